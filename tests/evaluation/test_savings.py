"""Savings at matched quality and the share of the oracle's gain."""

from __future__ import annotations

import numpy as np
import pytest

from howhard.errors import ConfigError
from howhard.evaluation import (
    Curve,
    budget_to_reach,
    compute_savings,
    oracle_curve,
    oracle_gain_fraction,
    savings_vs_uniform,
    uniform_curve,
)
from howhard.policies import marginals_from_success_prob


def curve(name: str, spent: list[float], quality: list[float]) -> Curve:
    values = np.asarray(spent, dtype=np.float64)
    return Curve(name, values, values.copy(), np.asarray(quality, dtype=np.float64))


def test_budget_to_reach_inverts_the_baseline_linearly() -> None:
    baseline = curve("uniform", [0, 1, 2, 4], [0.0, 0.4, 0.6, 0.8])
    needed = budget_to_reach(baseline, [0.0, 0.2, 0.5, 0.7, 0.8, 0.9])
    np.testing.assert_allclose(needed, [0.0, 0.5, 1.5, 3.0, 4.0, np.nan])


def test_savings_compare_spent_compute_at_matched_quality() -> None:
    baseline = curve("uniform", [0, 1, 2, 4], [0.0, 0.4, 0.6, 0.8])
    method = curve("online", [1.0, 2.0, 3.0], [0.6, 0.8, 0.9])
    # Uniform needs 2 and 4 units for 0.6 and 0.8 (50% saved) and never reaches 0.9.
    np.testing.assert_allclose(compute_savings(method, baseline), [0.5, 0.5, np.nan])


def test_uniform_saves_nothing_against_itself_and_the_oracle_saves_on_spread_difficulty() -> None:
    rng = np.random.default_rng(0)
    p = np.where(rng.random(2000) < 0.25, 0.0, rng.beta(0.6, 1.8, size=2000))
    truth = marginals_from_success_prob(p, 16)
    grid = np.arange(1.0, 9.0)
    np.testing.assert_allclose(
        savings_vs_uniform(uniform_curve(truth, grid), truth), 0.0, atol=1e-9
    )
    oracle_saving = savings_vs_uniform(oracle_curve(truth, grid), truth)
    assert (oracle_saving[~np.isnan(oracle_saving)] > 0.1).all()


def test_oracle_gain_fraction_is_one_for_the_oracle_and_zero_for_uniform() -> None:
    uniform = curve("uniform", [1, 2, 3], [0.2, 0.3, 0.4])
    oracle = curve("oracle", [1, 2, 3], [0.4, 0.5, 0.4])
    method = curve("online", [1, 2, 3], [0.3, 0.5, 0.4])
    np.testing.assert_allclose(oracle_gain_fraction(oracle, uniform, oracle), [1.0, 1.0, np.nan])
    np.testing.assert_allclose(oracle_gain_fraction(uniform, uniform, oracle), [0.0, 0.0, np.nan])
    np.testing.assert_allclose(oracle_gain_fraction(method, uniform, oracle), [0.5, 1.0, np.nan])


def test_oracle_gain_fraction_requires_one_grid() -> None:
    uniform = curve("uniform", [1, 2], [0.2, 0.3])
    with pytest.raises(ConfigError, match=r"curves must share one budget grid, but 'oracle'"):
        oracle_gain_fraction(uniform, uniform, curve("oracle", [1, 3], [0.3, 0.5]))
