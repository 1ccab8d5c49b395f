"""The benchmark report's curves obey the orderings the maths guarantees."""

from pathlib import Path

import numpy as np
import pytest

from howhard.evaluation.benchmark import best_of_k_quality, concave_marginals, routing_curves
from howhard.evaluation.data import SplitData
from howhard.evaluation.render import PLOTS, write_report
from howhard.evaluation.report import build_report


def _split(seed: int, n: int, m: int, noise: float) -> SplitData:
    rng = np.random.default_rng(seed)
    lam = np.where(rng.random(n) < 0.3, 0.0, rng.beta(1.2, 2.0, n))
    rewards = (rng.random((n, m)) < lam[:, None]).astype(np.float64)
    # A wrong sample answers one of three wrong values; a right one answers "ok".
    answers = tuple(
        tuple("ok" if r else f"w{rng.integers(3)}" for r in row) for row in rewards.astype(bool)
    )
    guess = np.clip(lam + noise * rng.standard_normal(n), 0.001, 0.999)
    return SplitData(
        ids=tuple(f"q{i}" for i in range(n)),
        families=("synthetic",) * n,
        rewards=rewards,
        answers=answers,
        tokens=np.full((n, m), 10, dtype=np.int64),
        lambda_hat=guess,
    )


@pytest.fixture(scope="module")
def report():  # type: ignore[no-untyped-def]
    test, val = _split(0, 150, 16, 0.03), _split(1, 300, 16, 0.03)
    return build_report(test, val, train_mean_lambda=0.3, max_budget=16, budget_step=0.5)


def test_oracle_dominates_and_curves_are_probabilities(report) -> None:  # type: ignore[no-untyped-def]
    bok = {name: curve.quality for name, curve in report.best_of_k.items()}
    assert np.all(bok["oracle"] >= bok["uniform"] - 1e-12)
    assert np.all(bok["oracle"] >= bok["online"] - 1e-12)
    for curve in (*report.best_of_k.values(), *report.self_consistency.values()):
        assert np.all((curve.quality >= 0) & (curve.quality <= 1))


def test_uniform_best_of_k_is_increasing(report) -> None:  # type: ignore[no-untyped-def]
    assert np.all(np.diff(report.best_of_k["uniform"].quality) >= -1e-12)


def test_a_good_probe_beats_uniform_at_small_budgets(report) -> None:  # type: ignore[no-untyped-def]
    row = next(r for r in report.table() if r["budget"] == 4)
    assert row["online"] > row["uniform"]
    assert row["online_gain_share"] > 0.3


def test_allocation_shifts_to_hard_questions_as_budget_grows(report) -> None:  # type: ignore[no-untyped-def]
    shares = report.tercile_shares
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert shares[-1, 2] > shares[0, 2]


def test_report_files_are_written(report, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    paths = write_report(report, tmp_path, observed_lambda=np.linspace(0, 1, 10))
    assert {p.name for p in paths} == {"report.md", "report.json", *PLOTS}
    assert "Best-of-k" in (tmp_path / "report.md").read_text()


def test_best_of_k_quality_matches_the_closed_form() -> None:
    q = best_of_k_quality([[1, 0, 0, 0]], 4)
    np.testing.assert_allclose(q[0], [0, 0.25, 0.5, 0.75, 1.0])


def test_concave_marginals_are_non_increasing_and_non_negative() -> None:
    marginals = concave_marginals([[0.0, 0.2, 0.2, 0.5, 0.4]])
    assert np.all(np.diff(marginals[0]) <= 1e-12)
    assert np.all(marginals >= 0)
    assert marginals[0].sum() == pytest.approx(0.5)


def test_savings_are_measured_against_uniform(report) -> None:  # type: ignore[no-untyped-def]
    uniform = report.best_of_k_savings["uniform"]
    finite = uniform[np.isfinite(uniform)]
    np.testing.assert_allclose(finite, 0.0, atol=1e-9)  # uniform saves nothing over itself
    assert np.nanmax(report.best_of_k_savings["oracle"]) > 0


def test_routing_endpoints_and_oracle_order() -> None:
    weak = np.array([0.5, 0.1, 0.9, 0.0])
    strong = np.array([0.9, 0.1, 0.8, 0.4])
    curves, apgr = routing_curves(
        weak, strong, np.array([0.1, 0.2, 0.3, 0.4]), np.linspace(0, 1, 5)
    )
    for values in curves.values():
        assert values[0] == pytest.approx(weak.mean())
        assert values[-1] == pytest.approx(strong.mean())
    assert np.all(curves["oracle"] >= curves["learned"] - 1e-12)
    assert apgr["oracle"] >= apgr["random"]
