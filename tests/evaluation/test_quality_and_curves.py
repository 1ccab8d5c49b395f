"""Expected quality, uniform interpolation and policy curves, checked against direct sums."""

from __future__ import annotations

import numpy as np
import pytest

from howhard.errors import ConfigError
from howhard.evaluation import (
    expected_quality,
    offline_curve,
    online_curve,
    oracle_curve,
    quality_curves,
    quality_table,
    uniform_curve,
    uniform_quality,
)
from howhard.policies import marginals_from_success_prob, uniform_budgets


@pytest.fixture
def truth() -> np.ndarray:
    """A Math-like spread: a quarter of questions impossible, the rest of varied difficulty."""
    rng = np.random.default_rng(0)
    p = np.where(rng.random(400) < 0.25, 0.0, rng.beta(0.6, 1.8, size=400))
    return marginals_from_success_prob(p, 16)


def test_expected_quality_is_the_mean_prefix_sum() -> None:
    marginals = np.array([[0.5, 0.25, 0.125], [0.1, 0.0, -0.1]])
    assert expected_quality(np.array([2, 3]), marginals) == pytest.approx((0.75 + 0.0) / 2)
    table = quality_table(marginals)
    np.testing.assert_allclose(table, [[0, 0.5, 0.75, 0.875], [0, 0.1, 0.1, 0.0]])
    assert expected_quality(np.array([0, 1]), quality=table) == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("budgets", "kwargs", "message"),
    [
        (np.array([1, 1]), {}, r"exactly one of marginals= or quality="),
        (np.array([1.0, 1.0]), {"marginals": np.ones((2, 2))}, r"budgets must be an integer"),
        (np.array([1]), {"marginals": np.ones((2, 2))}, r"shape \(2,\), got dtype int64"),
        (np.array([3, 0]), {"marginals": np.ones((2, 2))}, r"budgets must lie in \[0, 2\]"),
        (np.array([1, 0]), {"marginals": [[np.nan], [1.0]]}, r"marginals must be finite"),
        (np.array([1, 0]), {"quality": np.ones(3)}, r"quality must have shape \(n, B\)"),
    ],
)
def test_expected_quality_rejects_bad_input(
    budgets: np.ndarray, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        expected_quality(budgets, **kwargs)  # type: ignore[arg-type]


def test_uniform_quality_at_integers_is_uniform_best_of_k(truth: np.ndarray) -> None:
    for average in (0, 1, 5, 16):
        budgets = uniform_budgets(400, float(average), 16)
        assert uniform_quality(truth, [average])[0] == pytest.approx(
            expected_quality(budgets, truth), abs=1e-12
        )


def test_uniform_quality_between_integers_is_the_expected_floor_ceil_mix(
    truth: np.ndarray,
) -> None:
    # Giving a random 25% of requests the extra unit has this expected quality.
    floor_q = expected_quality(np.full(400, 2), truth)
    ceil_q = expected_quality(np.full(400, 3), truth)
    assert uniform_quality(truth, [2.25])[0] == pytest.approx(0.75 * floor_q + 0.25 * ceil_q)


def test_uniform_quality_rejects_a_grid_beyond_max_budget(truth: np.ndarray) -> None:
    with pytest.raises(ConfigError, match=r"average_budgets must be <= max_budget=16, got 17"):
        uniform_quality(truth, [17.0])


def test_oracle_dominates_uniform_and_any_predictor(truth: np.ndarray) -> None:
    grid = np.array([0.5, 1.0, 2.0, 3.25, 8.0])
    noisy = np.clip(truth + np.random.default_rng(1).normal(0, 0.05, truth.shape), 0, None)
    noisy = np.minimum.accumulate(noisy, axis=1)
    oracle, uniform = oracle_curve(truth, grid), uniform_curve(truth, grid)
    online = online_curve(truth, noisy, grid)
    assert (oracle.quality >= uniform.quality - 1e-12).all()
    assert (oracle.quality >= online.quality - 1e-12).all()
    assert (oracle.spent <= grid + 1e-12).all() and (online.spent <= grid + 1e-12).all()
    perfect = online_curve(truth, truth, grid)
    np.testing.assert_allclose(perfect.quality, oracle.quality)


def test_offline_curve_on_its_own_fit_set_keeps_to_the_budget(truth: np.ndarray) -> None:
    grid = np.array([1.0, 2.0, 4.0])
    scores = truth[:, 0]
    offline = offline_curve(truth, scores, scores, truth, grid, n_bins=8)
    assert (offline.spent <= grid + 1e-12).all()
    assert (offline.quality <= oracle_curve(truth, grid).quality + 1e-12).all()
    assert (offline.quality >= uniform_curve(truth, grid).quality - 1e-12).all()


def test_quality_curves_builds_what_its_inputs_allow(truth: np.ndarray) -> None:
    grid = [1.0, 2.0]
    assert set(quality_curves(truth, grid)) == {"uniform", "oracle"}
    scores = truth[:, 0]
    full = quality_curves(
        truth,
        grid,
        predicted_marginals=truth,
        scores=scores,
        fit_scores=scores,
        fit_marginals=truth,
    )
    assert set(full) == {"uniform", "oracle", "online", "offline"}
    with pytest.raises(ConfigError, match=r"needs scores=, fit_scores= and fit_marginals="):
        quality_curves(truth, grid, scores=scores)


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ([], r"non-empty 1-D array"),
        ([1.0, np.nan], r"finite values >= 0"),
        ([-1.0], r"finite values >= 0"),
        ([20.0], r"average_budgets must be <= max_budget=16, got 20.0"),
    ],
)
def test_curves_reject_a_bad_grid(truth: np.ndarray, grid: list[float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        oracle_curve(truth, grid)


def test_online_curve_requires_predictions_for_every_request(truth: np.ndarray) -> None:
    with pytest.raises(ConfigError, match=r"predicted_marginals must match true_marginals"):
        online_curve(truth, truth[:10], [1.0])
