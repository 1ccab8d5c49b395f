"""The simulator runs the serving objects on logged samples; the closed forms check it."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from howhard.config import RoundsConfig
from howhard.errors import ConfigError
from howhard.evaluation.sequential import (
    p_all_fail,
    sequential_outcome,
    spend_to_reach,
    threshold_curve,
    uniform_cap_curve,
)
from howhard.evaluation.sequential_report import best_of_k_section
from howhard.evaluation.simulate import LoggedSamples, SimulatedPolicy, simulate
from howhard.policies.priors import FixedPrior, OnlinePrior, OnlinePriorConfig, RequestInfo
from howhard.policies.stream import (
    EliminationAllocator,
    FixedPriceAllocator,
    StreamAllocator,
    UnlimitedAllocator,
)
from howhard.procedures import AdaptiveSelfConsistency, EscRule, SequentialBestOfK
from howhard.scoring import ExactMatch


def logged_set(n: int = 120, m: int = 16, seed: int = 0) -> LoggedSamples:
    """Questions whose success rates follow the default prior fit given their probe logits."""
    rng = np.random.default_rng(seed)
    fit = OnlinePriorConfig().fit
    z = rng.normal(-0.75, 1.6**0.5, size=n)
    never = rng.random(n) < 1 / (1 + np.exp(-(fit.c0 + fit.c1 * z)))
    logit = rng.normal(fit.a0 + fit.a1 * z, fit.sigma)
    lam = np.where(never, 0.0, 1 / (1 + np.exp(-logit)))
    rewards = (rng.random((n, m)) < lam[:, None]).astype(np.float64)
    answers = tuple(
        tuple("right" if r else rng.choice(["a", "b", "c"]) for r in row) for row in rewards
    )
    return LoggedSamples(
        ids=tuple(f"q{i}" for i in range(n)),
        rewards=rewards,
        answers=answers,
        z=z,
        groups=tuple("g" + str(i % 3) for i in range(n)),
    )


def best_of_k(cap: int, schedule: tuple[int, ...] = (1,)) -> SequentialBestOfK:
    return SequentialBestOfK(ExactMatch(), config=RoundsConfig(schedule=schedule, max_budget=cap))


@given(m=st.integers(1, 9), c=st.integers(0, 9), draws=st.integers(0, 9))
def test_all_fail_probability_matches_enumeration(m: int, c: int, draws: int) -> None:
    c, draws = min(c, m), min(draws, m)
    samples = [1] * c + [0] * (m - c)
    # Random orders without replacement: the first `draws` are a uniform subset.
    subsets = list(combinations(range(m), draws))
    expected = sum(all(samples[i] == 0 for i in s) for s in subsets) / len(subsets)
    assert p_all_fail(m, c, draws) == pytest.approx(expected)


def test_uniform_cap_simulation_matches_the_closed_form() -> None:
    logged = logged_set()
    policy = SimulatedPolicy(
        "cap", lambda: FixedPrior(flat=True), lambda b, s: UnlimitedAllocator()
    )
    result = simulate(policy, best_of_k(6, (1, 2)), logged, average_budget=0.0, replays=48)
    _, _, _, exact_rounds = uniform_cap_curve(logged.rewards, 6, (1, 2))[5]
    cap, samples, success, _ = uniform_cap_curve(logged.rewards, 6, (1, 2))[5]
    assert cap == 6
    assert abs(result.success - success) < 4 * result.success_se + 1e-9
    assert abs(result.samples - samples) < 4 * result.samples_se + 1e-9
    assert set(result.stops) <= {"passed", "max_budget"}
    assert exact_rounds <= 3


def test_fixed_price_simulation_matches_the_threshold_curve() -> None:
    logged = logged_set()
    config = OnlinePriorConfig()
    prior = FixedPrior(config)
    log_w = np.stack(
        [
            prior.prior(RequestInfo(key=i, z=float(z)))
            for i, z in zip(logged.ids, logged.z, strict=True)
        ]
    )
    curve = threshold_curve(log_w, logged.rewards, max_budget=12)
    price, samples, success, _ = curve[len(curve) // 2]
    policy = SimulatedPolicy(
        "fixed", lambda: FixedPrior(config), lambda b, s: FixedPriceAllocator(price=price)
    )
    result = simulate(policy, best_of_k(12), logged, average_budget=0.0, replays=48)
    assert abs(result.success - success) < 4 * result.success_se + 1e-9
    assert abs(result.samples - samples) < 4 * result.samples_se + 1e-9


def test_the_stream_spends_its_budget_and_beats_uniform_caps_and_elimination() -> None:
    logged = logged_set(n=200)
    config = OnlinePriorConfig()
    pool = lambda b, s: StreamAllocator(average_budget=b, horizon=0)  # noqa: E731
    learned = SimulatedPolicy("learned", lambda: OnlinePrior(config), pool)
    elimination = SimulatedPolicy(
        "elim",
        lambda: FixedPrior(flat=True),
        lambda b, s: EliminationAllocator(average_budget=b, seed=s),
    )
    a = simulate(learned, best_of_k(16), logged, average_budget=3.0, replays=8)
    b = simulate(elimination, best_of_k(16), logged, average_budget=3.0, replays=8)
    assert a.samples <= 3.0 + 1e-9 and a.samples > 2.9
    assert b.samples <= 3.0 + 1e-9
    assert a.success > b.success
    uniform = uniform_cap_curve(logged.rewards, 16)
    assert a.success > float(np.interp(a.samples, uniform[:, 1], uniform[:, 2]))


def test_self_consistency_rules_run_through_the_simulator() -> None:
    logged = logged_set(n=60)
    policy = SimulatedPolicy("sc", lambda: FixedPrior(flat=True), lambda b, s: UnlimitedAllocator())
    procedure = AdaptiveSelfConsistency(EscRule(window=2), config=RoundsConfig(max_budget=8))
    result = simulate(policy, procedure, logged, average_budget=0.0, replays=4)
    assert 2.0 <= result.samples < 8.0
    assert 0.0 < result.success < 1.0 and "settled" in result.stops


def test_bad_simulation_input_is_refused() -> None:
    logged = logged_set(n=10, m=8)
    policy = SimulatedPolicy(
        "cap", lambda: FixedPrior(flat=True), lambda b, s: UnlimitedAllocator()
    )
    with pytest.raises(ConfigError, match="exceeds the 8 stored samples"):
        simulate(policy, best_of_k(16), logged, average_budget=0.0)
    with pytest.raises(ConfigError, match="rewards must have shape"):
        LoggedSamples(
            ids=("a",), rewards=np.zeros((2, 3)), answers=((),), z=np.zeros(1), groups=("g",)
        )


def test_closed_forms_agree_on_a_single_question() -> None:
    samples, success, rounds = sequential_outcome([2], 4, [3], np.array([1, 2, 3]))
    # P(no pass in the first j of 4 samples with 2 passing): 1, 1/2, 1/6.
    assert samples[0] == pytest.approx(1 + 1 / 2 + 1 / 6)
    assert success[0] == pytest.approx(1.0)
    assert rounds[0] == pytest.approx(samples[0])
    curve = np.array([[0, 1.0, 0.2, 1], [0, 2.0, 0.6, 2], [0, 4.0, 0.8, 3]])
    assert spend_to_reach(curve, 0.4) == pytest.approx(1.5)


def test_the_report_section_and_dataset_loading(tmp_path: Path) -> None:
    logged = logged_set(n=40)
    rows = [
        {"id": i, "rewards": list(r), "metadata": {"family": g}}
        for i, r, g in zip(logged.ids, logged.rewards.tolist(), logged.groups, strict=True)
    ]
    (tmp_path / "requests.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "answers.jsonl").write_text(
        "\n".join(
            json.dumps({"id": i, "answers": list(a)})
            for i, a in zip(logged.ids, logged.answers, strict=True)
        )
    )
    loaded = LoggedSamples.from_dataset(tmp_path, z=logged.z)
    assert loaded.groups == logged.groups and (loaded.rewards == logged.rewards).all()
    section = best_of_k_section(
        loaded,
        setting="test",
        config=OnlinePriorConfig(),
        budgets=[2.0, 16.0],
        max_budget=16,
        replays=2,
    )
    text = "\n".join(section.lines)
    assert "sequential, probe prior (learned strength)" in text and "bandit elimination" in text
    assert section.figures["target_u16"] == pytest.approx(
        float((logged.rewards.max(axis=1)).mean())
    )


def test_the_sequential_report_command_takes_its_options() -> None:
    from howhard.cli import build_parser

    args = build_parser().parse_args(
        ["evaluate", "--sequential", "--sc-ablation", "--test-features", "f", "--replays", "2"]
    )
    assert args.sequential and args.sc_ablation and args.replays == 2
    assert str(args.test_features) == "f" and args.value_paths == 48 and args.cap == 32


def test_sequential_budgets_may_be_fractions_one_shot_budgets_may_not() -> None:
    from howhard.commands.evaluate import _average_budgets, _budgets

    assert _average_budgets("2,6.4,8") == [2.0, 6.4, 8.0]
    assert _average_budgets("2-4") == [2.0, 3.0, 4.0]
    assert _budgets("1-3") == [1, 2, 3] and _budgets("2,4") == [2, 4]
    for bad in ("2,x", "0,4", "2,-1", "inf", ""):
        with pytest.raises(ConfigError, match="--budgets"):
            _average_budgets(bad)
    with pytest.raises(ConfigError, match="whole numbers"):
        _budgets("2,6.4")


def test_leave_group_out_probes_train_on_the_probes_own_training_build(tmp_path: Path) -> None:
    from howhard.cli import build_parser
    from howhard.commands.evaluate import PROBE_TRAIN, _probe_data

    parse = build_parser().parse_args
    # A data folder without a probe-train build: the held-out dataset, as before.
    assert _probe_data(parse(["evaluate", "--data", str(tmp_path)])) == "runs/trainval"
    # With one, the folds learn from what the shipped probe learned from.
    (tmp_path / PROBE_TRAIN).mkdir(parents=True)
    (tmp_path / PROBE_TRAIN / "requests.jsonl").write_text("")
    assert _probe_data(parse(["evaluate", "--data", str(tmp_path)])) == PROBE_TRAIN
    # An explicit choice wins either way.
    args = parse(["evaluate", "--data", str(tmp_path), "--probe-data", "runs/mine"])
    assert _probe_data(args) == "runs/mine"
    # The benchmark's own folder has the build, with the features the folds need.
    root = Path(__file__).resolve().parents[2] / "data"
    assert (root / PROBE_TRAIN / "features.npy").exists()


def test_a_stream_with_requests_in_flight_and_a_deadline() -> None:
    logged = logged_set(n=80)
    config = OnlinePriorConfig()
    stream = SimulatedPolicy(
        "stream",
        lambda: OnlinePrior(config),
        lambda b, s: StreamAllocator(average_budget=b, horizon=16),
        concurrency=8,
    )
    result = simulate(stream, best_of_k(16), logged, average_budget=3.0, replays=2)
    assert result.samples <= 3.0 + 1e-9 and result.ticks_p99 >= result.rounds_p99
    hurried = SimulatedPolicy(
        "deadline",
        lambda: FixedPrior(flat=True),
        lambda b, s: UnlimitedAllocator(),
        concurrency=8,
        deadline=3,
    )
    result = simulate(hurried, best_of_k(16), logged, average_budget=0.0, replays=2)
    assert result.rounds_p99 <= 3 and result.stops["deadline"] > 0
