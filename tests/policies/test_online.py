"""allocate / allocate_success_prob / OnlineAllocator: exact, bounded, deterministic, validated."""

from __future__ import annotations

import dataclasses
from itertools import product

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from howhard.errors import ConfigError
from howhard.policies import (
    OnlineAllocator,
    allocate,
    allocate_success_prob,
    marginals_from_success_prob,
)

# --------------------------------------------------------------------------- references


def brute_force_optimum(marginals: np.ndarray, total: int, min_budget: int) -> float:
    """Best objective of Eq. 5 by exhaustive enumeration of every budget vector."""
    n, width = marginals.shape
    prefix = np.concatenate([np.zeros((n, 1)), np.cumsum(marginals, axis=1)], axis=1)
    best = -np.inf
    for budgets in product(range(min_budget, width + 1), repeat=n):
        if sum(budgets) <= total:
            best = max(best, sum(prefix[i, b] for i, b in enumerate(budgets)))
    return float(best)


def sort_reference(marginals: np.ndarray, total: int, min_budget: int = 0) -> np.ndarray:
    """Independent exact reference: sort every unit (value desc, row asc, column asc), take the
    top positive ones. O(N log N), fine for tests."""
    n, width = marginals.shape
    rows, cols = np.divmod(np.arange(n * width), width)
    values = marginals.ravel()
    keep = (cols >= min_budget) & (values > 0)
    order = np.lexsort((cols[keep], rows[keep], -values[keep]))
    chosen = rows[keep][order[: total - min_budget * n]]
    return min_budget + np.bincount(chosen, minlength=n)


def objective(marginals: np.ndarray, budgets: np.ndarray) -> float:
    mask = np.arange(marginals.shape[1])[None, :] < budgets[:, None]
    return float((marginals * mask).sum())


# Values drawn from a small set produce ties, zeros and negative tails on purpose.
_entry = st.one_of(
    st.sampled_from([-1.0, -0.25, 0.0, 0.0, 0.125, 0.25, 0.5, 1.0]),
    st.floats(-2.0, 2.0, allow_nan=False, allow_subnormal=False),
)


@st.composite
def instances(draw: st.DrawFn) -> tuple[np.ndarray, int, int]:
    n = draw(st.integers(1, 4))
    width = draw(st.integers(1, 4))
    rows = [sorted(draw(st.lists(_entry, min_size=width, max_size=width)), reverse=True)]
    rows += [
        sorted(draw(st.lists(_entry, min_size=width, max_size=width)), reverse=True)
        for _ in range(n - 1)
    ]
    marginals = np.array(rows, dtype=np.float64)
    min_budget = draw(st.integers(0, width))
    total = draw(st.integers(min_budget * n, n * width + 2))
    return marginals, total, min_budget


# --------------------------------------------------------------------------- exactness


@settings(max_examples=250, deadline=None)
@given(instances())
def test_allocate_reaches_the_brute_force_optimum(case: tuple[np.ndarray, int, int]) -> None:
    marginals, total, min_budget = case
    budgets = allocate(marginals, total, min_budget=min_budget)
    assert budgets.dtype == np.int64
    assert budgets.sum() <= total
    assert ((budgets >= min_budget) & (budgets <= marginals.shape[1])).all()
    assert objective(marginals, budgets) == pytest.approx(
        brute_force_optimum(marginals, total, min_budget), abs=1e-9
    )
    np.testing.assert_array_equal(budgets, sort_reference(marginals, total, min_budget))


@settings(max_examples=100, deadline=None)
@given(instances())
def test_allocate_never_buys_a_unit_worth_nothing(case: tuple[np.ndarray, int, int]) -> None:
    marginals, total, min_budget = case
    budgets = allocate(marginals, total, min_budget=min_budget)
    for row, budget in zip(marginals, budgets, strict=True):
        assert (row[min_budget:budget] > 0).all()


def test_equal_marginals_go_to_the_earlier_request() -> None:
    marginals = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    np.testing.assert_array_equal(allocate(marginals, 3), [2, 1, 0])


def test_ties_at_the_threshold_are_split_by_request_order_not_by_column() -> None:
    marginals = np.array([[0.9, 0.3, 0.3], [0.3, 0.3, 0.0], [0.9, 0.3, 0.1]])
    # After the two 0.9 units, three of the five 0.3 units fit: rows 0 first, then row 1.
    np.testing.assert_array_equal(allocate(marginals, 5), [3, 1, 1])


def test_allocate_is_deterministic_and_does_not_modify_its_input() -> None:
    rng = np.random.default_rng(3)
    marginals = marginals_from_success_prob(rng.choice([0.1, 0.3, 0.5], size=5000), 32)
    before = marginals.copy()
    first = allocate(marginals, 40_000)
    np.testing.assert_array_equal(first, allocate(marginals.copy(), 40_000))
    np.testing.assert_array_equal(marginals, before)


@pytest.mark.parametrize("min_budget", [0, 2])
@pytest.mark.parametrize("extra", [1, 777, 20_000, 123_457, 400_000, 10**7])
@pytest.mark.parametrize("kind", ["spread", "ties", "mixed-signs"])
def test_large_instances_match_the_sort_reference(extra: int, kind: str, min_budget: int) -> None:
    """Large enough to exercise the sampled bracket and its narrowing rounds."""
    rng = np.random.default_rng(len(kind) * 1000 + extra % 997)
    n, width = 12_000, 24
    total = extra + min_budget * n
    if kind == "spread":
        marginals = marginals_from_success_prob(rng.beta(0.5, 2.0, size=n), width)
    elif kind == "ties":
        marginals = marginals_from_success_prob(rng.choice([0.0, 0.2, 0.5, 1.0], size=n), width)
    else:
        marginals = -np.sort(-rng.normal(size=(n, width)), axis=1)
    budgets = allocate(marginals, total, min_budget=min_budget)
    np.testing.assert_array_equal(budgets, sort_reference(marginals, total, min_budget))


def test_min_budget_is_granted_even_to_worthless_requests() -> None:
    marginals = np.array([[0.0, 0.0], [-1.0, -2.0], [0.8, 0.4]])
    np.testing.assert_array_equal(allocate(marginals, 4, min_budget=1), [1, 1, 2])


def test_rows_may_rise_before_min_budget() -> None:
    # Forced units are bought regardless, so only columns from min_budget on must be sorted.
    marginals = np.array([[-1.75, 0.5, 0.25], [0.1, 0.9, 0.0]])
    np.testing.assert_array_equal(allocate(marginals, 3, min_budget=1), [1, 2])
    with pytest.raises(ConfigError, match=r"row 0 rises from -1.75 to 0.5 at columns 0->1"):
        allocate(marginals, 3)


def test_budget_beyond_every_positive_unit_is_left_unspent() -> None:
    marginals = np.array([[0.5, 0.1, 0.0], [0.2, -0.1, -0.2]])
    np.testing.assert_array_equal(allocate(marginals, 100), [2, 1])


def test_empty_batch_and_zero_budget() -> None:
    assert allocate(np.zeros((0, 4)), 10).shape == (0,)
    np.testing.assert_array_equal(allocate(np.ones((3, 2)), 0), [0, 0, 0])


def test_rounding_sized_rises_are_tolerated() -> None:
    marginals = np.array([[0.5, 0.5 + 1e-13, 0.2]])
    np.testing.assert_array_equal(allocate(marginals, 2), [2])


# --------------------------------------------------------------------------- success probabilities

_probability = st.one_of(
    st.sampled_from([0.0, 1.0, 0.5, 0.25, 1e-17, 1e-16, 1.5e-16, 2e-16, 1e-300, 1 - 1e-12]),
    st.floats(0.0, 1.0, allow_subnormal=True),
)


@settings(max_examples=150, deadline=None)
@given(
    p=st.lists(_probability, min_size=1, max_size=12),
    width=st.integers(1, 12),
    data=st.data(),
)
def test_success_prob_path_is_identical_to_the_matrix_path(
    p: list[float], width: int, data: st.DataObject
) -> None:
    n = len(p)
    min_budget = data.draw(st.integers(0, width))
    total = data.draw(st.integers(min_budget * n, n * width + 2))
    expected = allocate(marginals_from_success_prob(p, width), total, min_budget=min_budget)
    actual = allocate_success_prob(p, total, max_budget=width, min_budget=min_budget)
    np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("min_budget", [0, 3])
@pytest.mark.parametrize("extra", [5, 50_000, 333_333, 3_000_000])
def test_success_prob_path_matches_on_large_batches_with_ties(extra: int, min_budget: int) -> None:
    """Large enough for the sampled bracket and its narrowing rounds on both paths."""
    rng = np.random.default_rng(extra + min_budget)
    p = np.concatenate([rng.beta(0.5, 2.0, 60_000), rng.choice([0.0, 0.05, 0.3, 1.0], 60_000)])
    width, total = 40, extra + min_budget * p.size
    expected = allocate(marginals_from_success_prob(p, width), total, min_budget=min_budget)
    actual = allocate_success_prob(p, total, max_budget=width, min_budget=min_budget)
    np.testing.assert_array_equal(actual, expected)


def test_success_prob_path_handles_underflowing_rows() -> None:
    p = np.array([1 - 1e-300, 0.999, 0.5, 1e-5])
    width = 2000  # 0.001**j underflows to 0 long before the row ends
    for total in (3, 200, 8000):
        expected = allocate(marginals_from_success_prob(p, width), total)
        np.testing.assert_array_equal(allocate_success_prob(p, total, max_budget=width), expected)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("marginals", "total", "min_budget", "message"),
    [
        (np.array([[0.5, np.nan]]), 1, 0, r"marginals must be finite, got nan at \(row, column\)"),
        (np.array([[np.inf, 0.5]]), 1, 0, r"marginals must be finite, got inf"),
        (np.array([[0.5], [-np.inf]]), 1, 0, r"marginals must be finite, got -inf"),
        (np.array([0.5, 0.25]), 1, 0, r"marginals must have shape \(n, max_budget\), got shape"),
        (np.zeros((2, 2, 2)), 1, 0, r"marginals must have shape \(n, max_budget\)"),
        (np.array([[0.1, 0.5]]), 1, 0, r"row 0 rises from 0.1 to 0.5 at columns 0->1"),
        ([["a", "b"]], 1, 0, r"marginals must be a numeric array"),
        (np.ones((2, 2)), -1, 0, r"total_budget must be >= 0, got -1"),
        (np.ones((2, 2)), 2.5, 0, r"total_budget must be an int >= 0, got 2.5"),
        (np.ones((2, 2)), True, 0, r"total_budget must be an int >= 0, got True"),
        (np.ones((2, 2)), 4, -1, r"min_budget must be >= 0, got -1"),
        (np.ones((2, 2)), 8, 3, r"min_budget must be <= max_budget=2, got 3"),
        (np.ones((3, 2)), 2, 1, r"total_budget=2 cannot give min_budget=1 to each of 3 requests"),
    ],
)
def test_allocate_rejects_bad_input(
    marginals: object, total: object, min_budget: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        allocate(marginals, total, min_budget=min_budget)  # type: ignore[arg-type]


def test_allocate_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="must be finite"):
        allocate(np.array([[np.nan]]), 1)


@pytest.mark.parametrize(
    ("p", "max_budget", "message"),
    [
        ([0.5, 1.5], 4, r"p must lie in \[0, 1\], got 1.5 at index 1"),
        ([0.5, -0.1], 4, r"p must lie in \[0, 1\], got -0.1 at index 1"),
        ([np.nan], 4, r"p must lie in \[0, 1\], got nan at index 0"),
        ([[0.5]], 4, r"p must have shape \(n,\), got shape \(1, 1\)"),
        (["x"], 4, r"p must be a numeric array of shape \(n,\)"),
        ([0.5], 0, r"max_budget must be >= 1, got 0"),
        ([0.5], 2.0, r"max_budget must be an int >= 1, got 2.0"),
    ],
)
def test_allocate_success_prob_rejects_bad_input(
    p: object, max_budget: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        allocate_success_prob(p, 1, max_budget=max_budget)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- OnlineAllocator


def test_online_allocator_spends_floor_of_average_times_batch_size() -> None:
    allocator = OnlineAllocator(2.3, max_budget=8)
    marginals = marginals_from_success_prob(np.linspace(0.05, 0.6, 10), 8)
    budgets = allocator.allocate(marginals)
    assert budgets.sum() == 23  # floor(2.3 * 10) despite 2.3 * 10 == 22.999... in floats
    np.testing.assert_array_equal(budgets, allocate(marginals, 23))


def test_online_allocator_explicit_total_and_extra_columns() -> None:
    allocator = OnlineAllocator(average_budget=1.0, max_budget=2, min_budget=1)
    marginals = np.array([[0.9, 0.8, 0.7], [0.1, 0.05, 0.0]])
    np.testing.assert_array_equal(allocator.allocate(marginals, total_budget=3), [2, 1])
    np.testing.assert_array_equal(allocator.allocate(marginals), [1, 1])


def test_online_allocator_is_frozen() -> None:
    allocator = OnlineAllocator(4.0, 16)
    with pytest.raises(dataclasses.FrozenInstanceError):
        allocator.max_budget = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"average_budget": -1.0, "max_budget": 4}, r"average_budget must be a finite number >= 0"),
        ({"average_budget": "4", "max_budget": 4}, r"average_budget must be a number >= 0"),
        ({"average_budget": 2.0, "max_budget": 0}, r"max_budget must be >= 1, got 0"),
        ({"average_budget": 2.0, "max_budget": 4, "min_budget": 5}, r"min_budget must be <= max"),
        ({"average_budget": 0.5, "max_budget": 4, "min_budget": 1}, r"average_budget must be >= m"),
    ],
)
def test_online_allocator_validates_its_configuration(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        OnlineAllocator(**kwargs)  # type: ignore[arg-type]


def test_online_allocator_rejects_too_few_columns() -> None:
    with pytest.raises(ConfigError, match=r"B >= max_budget=4, got shape \(2, 3\)"):
        OnlineAllocator(2.0, 4).allocate(np.ones((2, 3)))


@pytest.mark.parametrize("total", [1, 999, 150_000, 150_001, 400_000])
def test_identical_requests_are_served_in_request_order(total: int) -> None:
    """Every entry of a column ties: whole columns are bought, the last one by request order."""
    n, width = 150_000, 8
    p = np.full(n, 0.3)
    full_columns, rest = divmod(total, n)
    expected = np.full(n, full_columns)
    expected[:rest] += 1
    np.testing.assert_array_equal(allocate_success_prob(p, total, max_budget=width), expected)
    np.testing.assert_array_equal(allocate(marginals_from_success_prob(p, width), total), expected)


def test_an_online_allocator_without_fields_takes_its_limits_from_each_call() -> None:
    marginals = marginals_from_success_prob(np.array([0.9, 0.5, 0.05]), 4)
    free = OnlineAllocator()
    assert free.allocate(marginals, 6).tolist() == allocate(marginals, 6).tolist()
    assert free.allocate(marginals, 6, min_budget=1).tolist() == (
        allocate(marginals, 6, min_budget=1).tolist()
    )
    # Its own fields still bind: the tighter cap and the larger floor win.
    capped = OnlineAllocator(max_budget=2, min_budget=1)
    assert capped.allocate(marginals, 12, min_budget=0).max() <= 2
    assert capped.allocate(marginals, 12, min_budget=0).min() >= 1
    with pytest.raises(ConfigError, match="total_budget is required"):
        free.allocate(marginals)
