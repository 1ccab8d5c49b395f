"""Baselines: uniform floor/ceil mix, random routing, oracle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from howhard.errors import ConfigError
from howhard.policies import (
    allocate,
    marginals_from_success_prob,
    oracle_budgets,
    random_routing,
    uniform_budgets,
)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 200), max_budget=st.integers(1, 16), data=st.data())
def test_uniform_mixes_floor_and_ceil_to_meet_the_average(
    n: int, max_budget: int, data: st.DataObject
) -> None:
    total = data.draw(st.integers(0, n * max_budget))
    budgets = uniform_budgets(n, total / n, max_budget)
    assert budgets.sum() == total
    assert budgets.max() - budgets.min() <= 1
    assert set(np.unique(budgets)) <= {total // n, -(-total // n)}


def test_uniform_spreads_leftover_units_through_the_batch() -> None:
    np.testing.assert_array_equal(uniform_budgets(8, 2.25, 4), [2, 2, 2, 3, 2, 2, 2, 3])
    np.testing.assert_array_equal(uniform_budgets(3, 4.0, 4), [4, 4, 4])
    assert uniform_budgets(0, 2.0, 4).shape == (0,)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, 2.0, 4), r"n must be an int >= 0, got -1"),
        ((4, 5.0, 4), r"average_budget must lie in \[0, 4\], got 5.0"),
        ((4, float("nan"), 4), r"average_budget must lie in \[0, 4\], got nan"),
        ((4, 1.0, 0), r"max_budget must be >= 1, got 0"),
        ((4, 1.0, 2.0), r"max_budget must be an int >= 1, got 2.0"),
    ],
)
def test_uniform_rejects_bad_input(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        uniform_budgets(*args)  # type: ignore[arg-type]


def test_random_routing_sends_the_requested_share_reproducibly() -> None:
    first = random_routing(1000, 0.3, seed=7)
    assert first.dtype == np.int64 and first.sum() == 300
    np.testing.assert_array_equal(first, random_routing(1000, 0.3, seed=7))
    assert not np.array_equal(first, random_routing(1000, 0.3, seed=8))


def test_random_routing_rejects_a_fraction_outside_the_unit_interval() -> None:
    with pytest.raises(ConfigError, match=r"strong_fraction must lie in \[0, 1\], got 1.5"):
        random_routing(10, 1.5, seed=0)


def test_oracle_is_allocate_on_the_true_marginals() -> None:
    truth = marginals_from_success_prob(np.linspace(0.0, 0.9, 30), 8)
    np.testing.assert_array_equal(oracle_budgets(truth, 60), allocate(truth, 60))
    np.testing.assert_array_equal(
        oracle_budgets(truth, 60, min_budget=1), allocate(truth, 60, min_budget=1)
    )
