"""OfflineAllocator: exact per-bin budgets, spend within budget, JSON round trip."""

from __future__ import annotations

import json
import math
from itertools import product
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from howhard.errors import CheckpointError, ConfigError
from howhard.policies import OfflineAllocator, marginals_from_success_prob


def prefix_value(marginals: np.ndarray, budgets: np.ndarray) -> float:
    mask = np.arange(marginals.shape[1])[None, :] < budgets[:, None]
    return float((marginals * mask).sum())


def brute_force_table_value(
    allocator: OfflineAllocator, scores: np.ndarray, marginals: np.ndarray, total: int
) -> float:
    """Best total reward over every per-bin budget table, with the allocator's own bins."""
    bins = np.searchsorted(np.asarray(allocator.edges), scores, side="right")
    best = -math.inf
    for table in product(range(allocator.max_budget + 1), repeat=len(allocator.table)):
        budgets = np.asarray(table)[bins]
        if budgets.sum() <= total:
            best = max(best, prefix_value(marginals, budgets))
    return best


@st.composite
def held_out_sets(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, float, int]:
    n = draw(st.integers(1, 9))
    width = draw(st.integers(1, 3))
    p = np.array(draw(st.lists(st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.9]), min_size=n, max_size=n)))
    scores = p + np.array(draw(st.lists(st.sampled_from([0.0, 0.05]), min_size=n, max_size=n)))
    average = draw(st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 3.0]))
    bins = draw(st.integers(1, 3))
    return scores, marginals_from_success_prob(p, width), min(average, width), bins


@settings(max_examples=80, deadline=None)
@given(held_out_sets())
def test_fit_is_the_exact_bin_constrained_optimum_within_budget(
    case: tuple[np.ndarray, np.ndarray, float, int],
) -> None:
    scores, marginals, average, n_bins = case
    allocator = OfflineAllocator.fit(scores, marginals, average, n_bins)
    budgets = allocator.budgets(scores)
    total = math.floor(average * len(scores) + 1e-9)
    assert budgets.sum() <= total
    assert allocator.expected_average_budget == pytest.approx(budgets.mean())
    assert len(allocator.table) <= n_bins
    assert prefix_value(marginals, budgets) == pytest.approx(
        brute_force_table_value(allocator, scores, marginals, total), abs=1e-12
    )


def test_harder_bins_get_more_samples_and_hopeless_ones_none() -> None:
    p = np.repeat([0.0, 0.1, 0.5, 0.95], 25)
    allocator = OfflineAllocator.fit(p, marginals_from_success_prob(p, 8), 2.0, 4)
    assert len(allocator.table) == 4
    table = dict(zip([0.0, 0.1, 0.5, 0.95], allocator.budgets([0.0, 0.1, 0.5, 0.95]), strict=True))
    assert table[0.0] == 0  # no unit has any value
    assert table[0.1] > table[0.5] >= table[0.95] >= 1
    assert allocator.expected_average_budget <= 2.0


def test_budgets_serve_unseen_scores_from_the_nearest_bin() -> None:
    p = np.linspace(0.05, 0.95, 40)
    allocator = OfflineAllocator.fit(p, marginals_from_success_prob(p, 6), 2.0, 3)
    served = allocator.budgets([-10.0, 0.5, 10.0])
    np.testing.assert_array_equal(served, [allocator.table[0], served[1], allocator.table[-1]])


def test_max_budget_caps_every_bin() -> None:
    p = np.linspace(0.01, 0.2, 50)
    allocator = OfflineAllocator.fit(p, marginals_from_success_prob(p, 16), 6.0, 5, max_budget=4)
    assert max(allocator.table) <= 4 and allocator.max_budget == 4


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    p = np.random.default_rng(0).beta(0.5, 2.0, size=500)
    allocator = OfflineAllocator.fit(p, marginals_from_success_prob(p, 16), 4.0, 10)
    path = tmp_path / "offline.json"
    allocator.save(path)
    loaded = OfflineAllocator.load(path)
    assert loaded == allocator
    np.testing.assert_array_equal(loaded.budgets(p), allocator.budgets(p))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", r"cannot read an offline allocator from .*pass a file written by"),
        ('{"format": "other"}', r"is not an offline allocator file"),
        ('{"format": "howhard.offline_allocator", "version": 99}', r"has version 99"),
        (
            '{"format": "howhard.offline_allocator", "version": 1, "edges": [0.5], '
            '"table": [1], "expected_average_budget": 1, "average_budget": 1, "max_budget": 4}',
            r"invalid offline allocator: table must have len\(edges\) \+ 1 = 2 entries",
        ),
        (
            '{"format": "howhard.offline_allocator", "version": 1, "edges": [], '
            '"table": [9], "expected_average_budget": 1, "average_budget": 1, "max_budget": 4}',
            r"table budgets must lie in \[0, max_budget=4\]",
        ),
        (
            '{"format": "howhard.offline_allocator", "version": 1, "edges": [0.2, 0.1], '
            '"table": [1, 1, 1], "expected_average_budget": 1, "average_budget": 1, '
            '"max_budget": 4}',
            r"edges must be finite and strictly increasing",
        ),
        (
            '{"format": "howhard.offline_allocator", "version": 1, "edges": [], '
            '"table": [1.5], "expected_average_budget": 1, "average_budget": 1, "max_budget": 4}',
            r"table must hold ints",
        ),
        ('{"format": "howhard.offline_allocator", "version": 1}', r"invalid offline allocator"),
    ],
)
def test_load_rejects_files_that_are_not_valid_tables(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(CheckpointError, match=message):
        OfflineAllocator.load(path)


def test_load_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"cannot read an offline allocator"):
        OfflineAllocator.load(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("scores", "marginals", "kwargs", "message"),
    [
        (np.zeros(3), np.ones((2, 2)), {}, r"got 3 scores and 2 rows of marginals"),
        (
            np.array([0.0, np.nan]),
            np.ones((2, 2)),
            {},
            r"scores must be finite, got nan at index 1",
        ),
        (np.zeros((2, 1)), np.ones((2, 2)), {}, r"scores must have shape \(n,\)"),
        (np.zeros(0), np.ones((0, 2)), {}, r"fit needs at least one held-out request"),
        (np.zeros(2), np.ones((2, 2)), {"n_bins": 0}, r"n_bins must be >= 1, got 0"),
        (np.zeros(2), np.ones((2, 2)), {"max_budget": 3}, r"max_budget must be <= the 2 columns"),
        (np.zeros(2), np.ones((2, 2)), {"average_budget": -1.0}, r"average_budget must be a fin"),
        (np.zeros(2), np.array([[0.1, 0.5]] * 2), {}, r"rows must be non-increasing"),
    ],
)
def test_fit_rejects_bad_input(
    scores: np.ndarray, marginals: np.ndarray, kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"average_budget": 1.0, "n_bins": 2, **kwargs}
    max_budget = arguments.pop("max_budget", None)
    with pytest.raises(ConfigError, match=message):
        OfflineAllocator.fit(scores, marginals, max_budget=max_budget, **arguments)  # type: ignore[arg-type]


def test_saved_file_is_plain_json(tmp_path: Path) -> None:
    p = np.array([0.1, 0.5])
    OfflineAllocator.fit(p, marginals_from_success_prob(p, 2), 1.0, 2).save(tmp_path / "a.json")
    payload = json.loads((tmp_path / "a.json").read_text())
    assert payload["format"] == "howhard.offline_allocator" and payload["version"] == 1
