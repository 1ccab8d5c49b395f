"""The value model shipped in the package, and the one-call rule built on it."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from howhard.backends import ScriptedBackend
from howhard.config import RoundsConfig
from howhard.errors import ConfigError
from howhard.probes.vote_value import VoteValueModel, default_value_model, vote_features
from howhard.procedures import AdaptiveSelfConsistency, RetryingCaller, ValueRule
from howhard.types import GenerationParams, Request


def test_the_shipped_model_predicts_probabilities_for_every_vote_state() -> None:
    model = default_value_model()
    assert model.max_budget == 16 and 0 < model.price < 0.1
    assert model.info["families"] >= 20  # fitted across families, not the core build alone
    # Vote states of random answer sequences: a few answers, some samples without one.
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(2000):
        n = int(rng.integers(1, 16))
        drawn = rng.integers(-1, int(rng.integers(1, 6)), size=n)  # -1: no answer
        per_answer = np.bincount(drawn[drawn >= 0]).tolist()
        counts = [*sorted(per_answer, reverse=True), 0, 0]
        distinct = sum(1 for c in per_answer if c > 0)
        rows.append((n, counts[0], counts[1], distinct, int((drawn < 0).sum())))
    s = np.asarray(rows, dtype=np.float64)
    z = rng.normal(0.0, 3.0, len(s))
    features = vote_features(s[:, 0], s[:, 1], s[:, 2], s[:, 3], s[:, 4], z, 16)
    now, final = model.predict(features)
    for p in (now, final):
        assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    gain = model.gain(features)
    assert (gain >= 0).all() and (gain <= 1).all()


def test_a_corrupt_or_foreign_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cut.json").write_text('{"format": "howhard.vote-value/1", "w1": [[1')
    with pytest.raises(ConfigError, match="cannot read a vote-value model"):
        VoteValueModel.load(tmp_path / "cut.json")
    (tmp_path / "short.json").write_text(
        '{"format": "howhard.vote-value/1", "max_budget": 16, "w1": [[1.0]], "b1": [0.0], '
        '"w2": [[1.0, 1.0]], "b2": [0.0, 0.0]}'
    )
    with pytest.raises(ConfigError, match=r"w1 \(8, h\)"):
        VoteValueModel.load(tmp_path / "short.json")
    with pytest.raises(ConfigError, match="price must be a finite number >= 0"):
        ValueRule.default(price=-1.0)


async def _vote(texts: list[str], z: float) -> tuple[str | None, int | None, object]:
    replies = itertools.cycle(texts)
    backend = ScriptedBackend(lambda prompt, n, params: [next(replies) for _ in range(n)])
    procedure = AdaptiveSelfConsistency(
        ValueRule.default(), config=RoundsConfig(max_budget=16), logit=lambda request: z
    )
    caller = RetryingCaller(backend, GenerationParams(max_tokens=8))
    outcome = await procedure.run(Request(prompt="q"), 16, caller)
    return outcome.answer, outcome.units, outcome.metadata["stop_reason"]


@pytest.mark.anyio
async def test_the_default_rule_stops_a_unanimous_vote_and_goes_on_in_a_contested_one() -> None:
    answer, units, reason = await _vote(["The answer is 7."], 0.0)
    assert answer == "7" and units is not None and units <= 4 and reason == "settled"
    contested = ["The answer is 3.", "The answer is 4."]
    answer, units, _ = await _vote(contested, 0.0)
    assert answer == "3" and units is not None and units >= 12
    # The same contest on a question the probe calls hopeless (λ ≈ 5%) is not worth sampling:
    # it stops after a few samples where the middling prior drew at least 12.
    _, hopeless, reason = await _vote(contested, -3.0)
    assert hopeless is not None and hopeless <= 4 and reason == "settled"
