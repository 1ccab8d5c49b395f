"""Offline allocation: a score-binned budget table fitted on held-out data, served per request.

Requests are binned by a predicted score at quantile edges and one budget per bin is chosen
(exactly, by dynamic programming) to maximise the held-out set's reward under the average
budget; serving looks each request's bin up, with no batch needed (the budget is met on
average). The table is saved and loaded as JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from howhard.errors import CheckpointError, ConfigError
from howhard.policies.validation import (
    as_matrix,
    check_average,
    check_int,
    check_rows,
    floor_total,
    validate_scores,
)

__all__ = ["OfflineAllocator"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_OFFLINE_FORMAT = "howhard.offline_allocator"
_OFFLINE_VERSION = 1


@dataclass(frozen=True, slots=True)
class OfflineAllocator:
    """A score-binned budget table: serve each request independently, budget met on average.

    Built by :meth:`fit` on a held-out set: requests are binned by a predicted score (e.g. the
    predicted first-unit marginal reward) at quantile edges, and one budget per bin is chosen to
    maximise the held-out set's total reward under the average budget (solved exactly). At serve
    time :meth:`budgets` looks each score's bin up in the table.

    Attributes:
        edges: interior bin edges, strictly increasing; a score ``s`` falls in bin
            ``searchsorted(edges, s, side="right")``.
        table: budget of each bin, ``len(edges) + 1`` entries.
        expected_average_budget: average units per request on the fit set.
        average_budget: the average budget the table was fitted for.
        max_budget: most units any bin may receive.
    """

    edges: tuple[float, ...]
    table: tuple[int, ...]
    expected_average_budget: float
    average_budget: float
    max_budget: int

    def __post_init__(self) -> None:
        if len(self.table) != len(self.edges) + 1:
            raise ConfigError(
                f"table must have len(edges) + 1 = {len(self.edges) + 1} entries, got "
                f"{len(self.table)}; build the allocator with OfflineAllocator.fit"
            )
        if any(not math.isfinite(e) for e in self.edges) or any(
            b >= a for a, b in zip(self.edges[1:], self.edges[:-1], strict=True)
        ):
            raise ConfigError(
                f"edges must be finite and strictly increasing, got {self.edges}; "
                "build the allocator with OfflineAllocator.fit"
            )
        if any(b < 0 or b > self.max_budget for b in self.table):
            raise ConfigError(
                f"table budgets must lie in [0, max_budget={self.max_budget}], got {self.table}"
            )

    @classmethod
    def fit(
        cls,
        scores: npt.ArrayLike,
        marginals: npt.ArrayLike,
        average_budget: float,
        n_bins: int,
        *,
        max_budget: int | None = None,
    ) -> OfflineAllocator:
        """Fit the bin table on a held-out set.

        Each bin ``k`` (``size_k`` requests) gets one budget ``b_k``; the problem
        ``max Σ_k Σ_{j≤b_k} A_kj`` s.t. ``Σ_k size_k·b_k ≤ floor(average_budget·n)``, with
        ``A_k`` the column sums of the bin's marginals, is a knapsack over bins and is solved
        exactly by dynamic programming over (bin, units spent). Ties prefer smaller budgets.

        Args:
            scores: ``(n,)`` predicted scores of the held-out requests (higher = more promising;
                any monotone score works).
            marginals: ``(n, B)`` marginal rewards of the same requests (measured or predicted).
            average_budget: target average units per request.
            n_bins: number of quantile bins; fewer result when scores repeat.
            max_budget: cap per request; defaults to ``B`` (uses the first ``max_budget`` columns).
        """
        matrix = check_rows(as_matrix(marginals))
        n, width = matrix.shape
        score = validate_scores(scores)
        if score.shape[0] != n:
            raise ConfigError(
                f"scores and marginals must describe the same requests, got {score.shape[0]} "
                f"scores and {n} rows of marginals; pass one score per row"
            )
        if n == 0:
            raise ConfigError("fit needs at least one held-out request, got 0; pass a held-out set")
        bins = check_int("n_bins", n_bins, minimum=1)
        average = check_average("average_budget", average_budget)
        cap = width if max_budget is None else check_int("max_budget", max_budget, minimum=1)
        if cap > width:
            raise ConfigError(
                f"max_budget must be <= the {width} columns of marginals, got {cap}; "
                "lower max_budget or pass more columns"
            )
        matrix = matrix[:, :cap]
        quantiles = np.quantile(score, np.linspace(0.0, 1.0, bins + 1)[1:-1])
        edges = np.unique(quantiles)
        sizes = np.bincount(np.searchsorted(edges, score, side="right"), minlength=edges.size + 1)
        # Interpolated quantiles can leave a bin with no held-out request; merge such bins into
        # a neighbour so no score range is served a budget nothing was fitted on.
        edges = edges[sizes[1:] > 0]
        if sizes[0] == 0 and edges.size:
            edges = edges[1:]
        bin_of = np.searchsorted(edges, score, side="right")
        sizes = np.bincount(bin_of, minlength=edges.size + 1)
        gains = np.zeros((edges.size + 1, cap), dtype=np.float64)
        np.add.at(gains, bin_of, matrix)
        table = _solve_bins(sizes, gains, floor_total(average, n))
        spent = int((sizes * table).sum())
        return cls(
            edges=tuple(float(e) for e in edges),
            table=tuple(int(b) for b in table),
            expected_average_budget=spent / n,
            average_budget=average,
            max_budget=cap,
        )

    def budgets(self, scores: npt.ArrayLike) -> IntArray:
        """``(n,)`` int64 budgets for requests with these ``(n,)`` scores, each independently."""
        score = validate_scores(scores)
        table = np.asarray(self.table, dtype=np.int64)
        result: IntArray = table[np.searchsorted(np.asarray(self.edges), score, side="right")]
        return result

    def save(self, path: str | Path) -> None:
        """Write the table as JSON (floats round-trip exactly)."""
        payload = {
            "format": _OFFLINE_FORMAT,
            "version": _OFFLINE_VERSION,
            "edges": list(self.edges),
            "table": list(self.table),
            "expected_average_budget": self.expected_average_budget,
            "average_budget": self.average_budget,
            "max_budget": self.max_budget,
        }
        Path(path).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> OfflineAllocator:
        """Read a table written by :meth:`save`; raises ``CheckpointError`` if it is not one."""
        try:
            payload = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(
                f"cannot read an offline allocator from {str(path)!r}: {exc}; "
                "pass a file written by OfflineAllocator.save"
            ) from exc
        if not isinstance(payload, dict) or payload.get("format") != _OFFLINE_FORMAT:
            raise CheckpointError(
                f"{str(path)!r} is not an offline allocator file (missing format "
                f"{_OFFLINE_FORMAT!r}); pass a file written by OfflineAllocator.save"
            )
        if payload.get("version") != _OFFLINE_VERSION:
            raise CheckpointError(
                f"{str(path)!r} has version {payload.get('version')!r}, this howhard reads "
                f"version {_OFFLINE_VERSION}; refit the allocator with this version"
            )
        try:
            edges = payload["edges"]
            table = payload["table"]
            if not all(isinstance(e, int | float) and not isinstance(e, bool) for e in edges):
                raise TypeError("edges must be numbers")
            if not all(isinstance(b, int) and not isinstance(b, bool) for b in table):
                raise TypeError("table must hold ints")
            return cls(
                edges=tuple(float(e) for e in edges),
                table=tuple(table),
                expected_average_budget=float(payload["expected_average_budget"]),
                average_budget=float(payload["average_budget"]),
                max_budget=check_int("max_budget", payload["max_budget"], minimum=1),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{str(path)!r} holds an invalid offline allocator: {exc}; refit and save it again"
            ) from exc


def _solve_bins(sizes: IntArray, gains: FloatArray, total: int) -> IntArray:
    """Exact multiple-choice knapsack: one budget per bin, bin ``k`` costs ``sizes[k]`` per unit.

    ``best[c]`` is the largest reward reachable with the bins so far spending at most ``c``
    units; the choice table records each bin's budget for backtracking. Costs are divided by
    the gcd of the bin sizes (every spend is a multiple of it), which shrinks the table when
    bins are equal-sized. Time ``O(bins · max_budget · total / gcd)``.
    """
    n_bins, cap = gains.shape
    unit = math.gcd(*(int(size) for size in sizes if size > 0)) or 1
    costs = [int(size) // unit for size in sizes]
    capacity = total // unit
    values = np.concatenate([np.zeros((n_bins, 1)), np.cumsum(gains, axis=1)], axis=1)
    best = np.zeros(capacity + 1, dtype=np.float64)
    choice = np.zeros((n_bins, capacity + 1), dtype=np.min_scalar_type(cap))
    for k in range(n_bins):
        nxt = best + values[k, 0]
        pick = choice[k]
        for b in range(1, cap + 1):
            cost = costs[k] * b
            if cost > capacity:
                break
            candidate = best[: capacity + 1 - cost] + values[k, b]
            better = candidate > nxt[cost:]  # strict: equal rewards keep the smaller budget
            nxt[cost:] = np.where(better, candidate, nxt[cost:])
            pick[cost:][better] = b
        best = nxt
    table = np.zeros(n_bins, dtype=np.int64)
    remaining = capacity
    for k in range(n_bins - 1, -1, -1):
        table[k] = int(choice[k, remaining])
        remaining -= costs[k] * int(table[k])
    return table
