"""Marginal-reward maths: exact order statistics, the binary closed form, routing labels."""

from __future__ import annotations

import math
from itertools import combinations, product

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from howhard.errors import ConfigError
from howhard.marginals import marginals_from_rewards, marginals_from_success_prob, preference_prob


def test_success_prob_marginals_follow_the_geometric_law() -> None:
    p = np.array([0.0, 0.2, 1.0])
    expected = np.array([[0.0, 0.0, 0.0], [0.2, 0.16, 0.128], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(marginals_from_success_prob(p, 3), expected, atol=1e-15)


def test_success_prob_marginals_sum_to_one_minus_failure_probability() -> None:
    p = np.linspace(0.0, 1.0, 11)
    q = marginals_from_success_prob(p, 7).sum(axis=1)
    np.testing.assert_allclose(q, 1 - (1 - p) ** 7, atol=1e-14)


@pytest.mark.parametrize(
    ("p", "max_budget", "message"),
    [
        ([1.2], 3, r"p must lie in \[0, 1\], got 1.2 at index 0"),
        ([np.nan], 3, r"p must be finite, got nan"),
        ([[0.1]], 3, r"p must have shape \(n,\), got an array with shape \(1, 1\)"),
        ([0.1], 0, r"max_budget must be >= 1, got 0"),
        ([0.1], 1.5, r"max_budget must be an int >= 1, got 1.5"),
    ],
)
def test_success_prob_marginals_reject_bad_input(
    p: object, max_budget: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        marginals_from_success_prob(p, max_budget)  # type: ignore[arg-type]


def expected_best_of_without_replacement(row: list[float], j: int) -> float:
    subsets = list(combinations(row, j))
    return sum(max(s) for s in subsets) / len(subsets)


def expected_best_of_with_replacement(row: list[float], j: int) -> float:
    draws = list(product(row, repeat=j))
    return sum(max(d) for d in draws) / len(draws)


_reward = st.one_of(st.sampled_from([0.0, 1.0, -1.0, 0.5]), st.floats(-5, 5, allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_reward, min_size=6, max_size=6), min_size=1, max_size=3), st.data())
def test_rewards_match_exhaustive_enumeration_of_subsets(
    rewards: list[list[float]], data: st.DataObject
) -> None:
    max_budget = data.draw(st.integers(1, 6))
    marginals = marginals_from_rewards(rewards, max_budget)
    for row, got in zip(rewards, marginals, strict=True):
        best = [0.0] + [expected_best_of_without_replacement(row, j) for j in range(1, 7)]
        np.testing.assert_allclose(got, np.diff(best)[:max_budget], atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(_reward, min_size=4, max_size=4), min_size=1, max_size=2), st.data())
def test_rewards_with_replacement_match_exhaustive_enumeration_of_draws(
    rewards: list[list[float]], data: st.DataObject
) -> None:
    max_budget = data.draw(st.integers(1, 5))  # more draws than samples is allowed here
    marginals = marginals_from_rewards(rewards, max_budget, replace=True)
    for row, got in zip(rewards, marginals, strict=True):
        best = [0.0] + [expected_best_of_with_replacement(row, j) for j in range(1, 6)]
        np.testing.assert_allclose(got, np.diff(best)[:max_budget], atol=1e-9)


@pytest.mark.parametrize("m", [8, 64, 1024])
def test_binary_rewards_give_the_hypergeometric_closed_form(m: int) -> None:
    successes = [0, 1, m // 3, m - 1, m]
    rewards = np.zeros((len(successes), m))
    for row, c in enumerate(successes):
        rewards[row, :c] = 1.0
    max_budget = min(m, 64)
    marginals = marginals_from_rewards(rewards, max_budget)
    for row, c in enumerate(successes):
        q = [1 - math.comb(m - c, j) / math.comb(m, j) for j in range(max_budget + 1)]
        # log-space binomials: lgamma(~1000) ~ 6000 carries ~1e-12 absolute error
        np.testing.assert_allclose(marginals[row], np.diff(q), atol=1e-10)
    assert (np.diff(marginals, axis=1) <= 0).all()


def test_rewards_with_large_m_stay_finite_and_non_increasing() -> None:
    rng = np.random.default_rng(0)
    marginals = marginals_from_rewards(rng.normal(size=(5, 1024)), 1024)
    assert np.isfinite(marginals).all()
    assert (np.diff(marginals[:, 1:], axis=1) <= 0).all()
    shifted = marginals_from_rewards(rng.uniform(size=(5, 1024)), 1024)
    assert (np.diff(shifted, axis=1) <= 0).all()


def test_negative_rewards_keep_later_units_non_increasing() -> None:
    rewards = np.array([[-3.0, -2.0, -1.0, -1.0]])
    marginals = marginals_from_rewards(rewards, 4)
    assert marginals[0, 0] == pytest.approx(-1.75)  # the mean: answering at all costs reward
    assert (np.diff(marginals[0, 1:]) <= 0).all()


def test_expected_best_of_all_samples_is_the_sample_maximum() -> None:
    rewards = np.random.default_rng(1).normal(size=(4, 300))
    np.testing.assert_allclose(
        marginals_from_rewards(rewards, 300).sum(axis=1), rewards.max(axis=1), atol=1e-9
    )


@pytest.mark.parametrize(
    ("rewards", "max_budget", "kwargs", "message"),
    [
        (np.zeros((2, 4)), 5, {}, r"max_budget must be <= the number of samples m=4"),
        (np.zeros((2, 0)), 1, {}, r"at least one sample per query"),
        (np.zeros(4), 2, {}, r"rewards must have shape \(n, m\)"),
        (np.array([[0.0, np.inf]]), 1, {}, r"rewards must be finite, got inf at index \(0, 1\)"),
        (np.zeros((1, 2)), 0, {"replace": True}, r"max_budget must be >= 1"),
    ],
)
def test_rewards_reject_bad_input(
    rewards: np.ndarray, max_budget: int, kwargs: dict[str, bool], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        marginals_from_rewards(rewards, max_budget, **kwargs)


def test_preference_prob_averages_the_sigmoid_over_every_pair() -> None:
    strong = np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    weak = np.array([[0.5, -1.0], [0.0, 3.0]])
    expected = [
        np.mean([1 / (1 + math.exp(-(s - w))) for s in srow for w in wrow])
        for srow, wrow in zip(strong, weak, strict=True)
    ]
    np.testing.assert_allclose(preference_prob(strong, weak), expected, atol=1e-15)


def test_preference_prob_is_complementary_and_overflow_free() -> None:
    rng = np.random.default_rng(2)
    strong, weak = rng.normal(size=(50, 8)) * 1e3, rng.normal(size=(50, 5)) * 1e3
    forward, backward = preference_prob(strong, weak), preference_prob(weak, strong)
    np.testing.assert_allclose(forward + backward, 1.0, atol=1e-12)
    assert ((forward >= 0) & (forward <= 1)).all()


@pytest.mark.parametrize(
    ("strong", "weak", "message"),
    [
        (np.zeros((2, 3)), np.zeros((3, 3)), r"same queries, got 2 and 3 rows"),
        (np.zeros(3), np.zeros((3, 3)), r"strong_rewards must have shape \(n, m_s\)"),
        (np.zeros((2, 3)), np.full((2, 1), np.nan), r"weak_rewards must be finite, got nan"),
        (np.zeros((2, 0)), np.zeros((2, 1)), r"need at least one sample per query"),
    ],
)
def test_preference_prob_rejects_bad_input(
    strong: np.ndarray, weak: np.ndarray, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        preference_prob(strong, weak)
