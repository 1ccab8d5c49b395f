"""The self-consistency value model: training states, fitting, saving, and the rule using it."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from howhard.config import RoundsConfig
from howhard.errors import ConfigError
from howhard.probes.vote_value import VoteValueModel, vote_features
from howhard.procedures import AdaptiveSelfConsistency, RetryingCaller, RoundState, ValueRule
from howhard.training.vote_value import (
    fit_vote_value,
    majority_value,
    merge_states,
    out_of_family_logits,
    training_states,
)
from howhard.types import GenerationParams, Request


def test_majority_value_breaks_ties_uniformly() -> None:
    assert majority_value({"a": 2, "b": 2, "c": 1}, {"a": 1.0, "b": 0.0}) == 0.5
    assert majority_value({}, {}) == 0.0


def test_training_states_describe_each_prefix_of_a_resampled_path() -> None:
    answers = [["7"] * 4, ["1", "2", None, "3"]]
    rewards = np.array([[1.0] * 4, [0.0, 0.0, 0.0, 1.0]])
    x, now, final = training_states(answers, rewards, [2.0, -2.0], paths=3, max_budget=4)
    assert x.shape == (2 * 3 * 3, 8)
    # The unanimous, always-right question is right now and at the end along every path.
    assert (now[:9] == 1.0).all() and (final[:9] == 1.0).all()
    assert (x[:9, 6] == 2.0).all() and (x[9:, 6] == -2.0).all()


pytest.importorskip("torch")


@functools.cache
def _model() -> VoteValueModel:
    rng = np.random.default_rng(0)
    settled = [["7"] * 16 for _ in range(20)]
    contested = [[str(a) for a in rng.integers(0, 3, 16)] for _ in range(20)]
    answers = settled + contested
    rewards = np.array([[1.0] * 16] * 20 + [[float(a == "0") for a in row] for row in contested])
    z = np.array([2.0] * 20 + [0.0] * 20)
    train = training_states(answers, rewards, z, paths=8, max_budget=16)
    val = training_states(answers, rewards, z, paths=2, max_budget=16, seed=1)
    model, loss = fit_vote_value(train, val, epochs=30)
    assert np.isfinite(loss)
    return model


def test_the_fitted_model_sees_little_to_gain_in_a_settled_vote(tmp_path: Path) -> None:
    model = _model()
    settled = vote_features([6], [6], [0], [1], [0], [2.0], 16)
    contested = vote_features([6], [2], [2], [3], [0], [0.0], 16)
    assert model.gain(settled)[0] < model.gain(contested)[0]
    model.save(tmp_path / "value.json")
    again = VoteValueModel.load(tmp_path / "value.json")
    assert np.allclose(again.gain(contested), model.gain(contested))
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ConfigError, match="not a vote-value model"):
        VoteValueModel.load(tmp_path / "bad.json")


@pytest.mark.anyio
async def test_the_value_rule_settles_a_unanimous_vote_early() -> None:
    from howhard.backends import ScriptedBackend

    rule = ValueRule(_model(), min_gain=0.01)
    procedure = AdaptiveSelfConsistency(
        rule, config=RoundsConfig(max_budget=16), logit=lambda request: 2.0
    )
    backend = ScriptedBackend(lambda prompt, n, params: ["The answer is 7."] * n)
    outcome = await procedure.run(
        Request(prompt="q"), 16, RetryingCaller(backend, GenerationParams(max_tokens=8))
    )
    assert outcome.answer == "7" and outcome.metadata["stop_reason"] == "settled"
    assert outcome.units is not None and outcome.units < 16
    state = RoundState(cap=16, sizes=(1,) * 16, used=16)
    assert not rule.settled(state, [])  # at the cap the procedure stops it, not the rule


def test_merged_states_keep_each_distinct_state_with_its_mean_targets_and_count() -> None:
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    merged = merge_states((x, np.array([1.0, 0.0, 1.0]), np.array([1.0, 1.0, 0.0])))
    rows = {tuple(r): i for i, r in enumerate(merged[0])}
    first = rows[(1.0, 0.0)]
    assert len(rows) == 2
    assert (merged[1][first], merged[2][first], merged[3][first]) == (0.5, 1.0, 2.0)
    again = merge_states(merged)  # merging merged states keeps the weights
    assert again[3].sum() == 3.0


def test_out_of_family_logits_score_a_family_as_the_other_families_would() -> None:
    # Four families where λ rises with x0 and one where it falls: a probe that never saw the
    # odd family predicts it the others' way, so its logits run against its own success.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 4)).astype(np.float32)
    families = [f"f{i % 5}" for i in range(300)]
    sign = np.where(np.asarray(families) == "f4", -1.0, 1.0)
    success = 1 / (1 + np.exp(-3 * sign * x[:, 0]))
    splits = ["val" if i % 7 == 0 else "train" for i in range(300)]
    z = out_of_family_logits(x, success, families, splits)
    odd = np.asarray(families) == "f4"
    assert np.corrcoef(z[odd], success[odd])[0, 1] < -0.5
    assert np.corrcoef(z[~odd], success[~odd])[0, 1] > 0.5
    with pytest.raises(ConfigError, match="one success, family and split per feature row"):
        out_of_family_logits(x, success[:10], families, splits)
