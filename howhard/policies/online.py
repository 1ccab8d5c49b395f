"""Online allocation: the exact optimum of each batch (the paper's Eq. 5).

Choose ``b_i`` to maximise ``Σ_i Σ_{j≤b_i} Δ_ij`` subject to ``Σ_i b_i ≤ total_budget`` and
``min_budget ≤ b_i ≤ B_max``. With non-increasing rows the feasible prefix sets form a matroid,
so buying the largest ``Δ_ij`` first is exact; :mod:`.selection` does it without a heap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError
from howhard.policies.selection import geometric_counter, matrix_counter, select
from howhard.policies.validation import (
    as_matrix,
    check_average,
    check_int,
    check_rows,
    check_totals,
    floor_total,
    validate_probabilities,
)

__all__ = ["OnlineAllocator", "allocate", "allocate_success_prob"]

IntArray = npt.NDArray[np.int64]


def allocate(marginals: npt.ArrayLike, total_budget: int, *, min_budget: int = 0) -> IntArray:
    """Exact optimum of Eq. 5: budgets maximising total expected reward within ``total_budget``.

    Every request first receives ``min_budget`` units; the rest of the budget buys, one unit at a
    time, the largest remaining positive marginal rewards. Rows are non-increasing, so this
    greedy is optimal, and it is computed without a heap (see the module docstring).

    Guarantees: ``budgets.sum() <= total_budget``; no unit with ``Δ <= 0`` is bought beyond
    ``min_budget``; equal marginal rewards go to the lower row index first, so the result is a
    deterministic function of the input.

    Args:
        marginals: ``(n, max_budget)`` marginal rewards; column ``j`` is unit ``j + 1``. Rows must
            be non-increasing from column ``min_budget`` on (earlier units are bought anyway);
            rises up to ``MONOTONE_TOLERANCE · max(1, max |Δ|)`` (rounding) are accepted and
            flattened by a running minimum.
        total_budget: units to spend across the batch, an int ``>= min_budget · n``.
        min_budget: units every request gets regardless of its marginals, ``<= max_budget``.

    Returns:
        ``(n,)`` int64 budgets in ``[min_budget, max_budget]``.

    Raises:
        ConfigError: (a ``ValueError``) for NaN/inf, a wrong shape, rows that increase, negative
            or non-integer budgets, ``min_budget > max_budget`` or ``min_budget · n >
            total_budget``.
    """
    matrix = as_matrix(marginals)
    n, max_budget = matrix.shape
    total, floor = check_totals(n, max_budget, total_budget, min_budget)
    matrix = check_rows(matrix, floor)
    count_above, values = matrix_counter(matrix, floor)
    # Matrix counts are exact, so select never needs its second, exact pass.
    bought = select(n, max_budget - floor, total - floor * n, count_above, values, exact=True)
    return bought + floor


def allocate_success_prob(
    p: npt.ArrayLike, total_budget: int, *, max_budget: int, min_budget: int = 0
) -> IntArray:
    """:func:`allocate` for binary rewards, straight from success probabilities, no matrix.

    Rows ``Δ_j = p(1-p)^(j-1)`` are geometric, so the number of a row's units above a threshold
    has a closed form (a logarithm); entries within rounding distance of the threshold are
    checked exactly. The result is identical, ties included, to
    ``allocate(marginals_from_success_prob(p, max_budget), total_budget, min_budget=min_budget)``
    but costs ``O(n)`` memory and time: a million requests take tens of milliseconds.

    Args:
        p: ``(n,)`` single-sample success probabilities in ``[0, 1]``.
        total_budget: units to spend across the batch, an int ``>= min_budget · n``.
        max_budget: most units any one request may receive, ``>= 1``.
        min_budget: units every request gets regardless, ``<= max_budget``.

    Returns:
        ``(n,)`` int64 budgets in ``[min_budget, max_budget]``.
    """
    probs = validate_probabilities(p)
    budget_cap = check_int("max_budget", max_budget, minimum=1)
    n = probs.shape[0]
    total, floor = check_totals(n, budget_cap, total_budget, min_budget)
    count_above, values = geometric_counter(probs, budget_cap, floor)
    bought = select(n, budget_cap - floor, total - floor * n, count_above, values)
    if floor:
        bought += floor
    return bought


@dataclass(frozen=True, slots=True)
class OnlineAllocator:
    """Per-batch exact allocation.

    Inside ``AdaptivePolicy`` under a scheduler, ``OnlineAllocator()`` needs no arguments: the
    batch's total, the width of the predicted marginals (the scheduler's ``max_budget``) and
    its ``min_budget`` come with every call. Fields set here add limits of their own (the
    tighter one wins) or, for ``average_budget``, a default total for standalone use.

    Args:
        average_budget: units per request on average; a batch of ``n`` gets
            ``floor(average_budget · n)`` when no total is given.
        max_budget: most units one request may receive (columns of marginals used; default:
            all the columns given).
        min_budget: units every request receives regardless of its marginals.
    """

    average_budget: float | None = None
    max_budget: int | None = None
    min_budget: int = 0

    def __post_init__(self) -> None:
        floor = check_int("min_budget", self.min_budget)
        object.__setattr__(self, "min_budget", floor)
        if self.max_budget is not None:
            cap = check_int("max_budget", self.max_budget, minimum=1)
            if floor > cap:
                raise ConfigError(
                    f"min_budget must be <= max_budget={cap}, got {floor}; lower min_budget"
                )
            object.__setattr__(self, "max_budget", cap)
        if self.average_budget is not None:
            average = check_average("average_budget", self.average_budget)
            if average < floor:
                raise ConfigError(
                    f"average_budget must be >= min_budget={floor}, got {average}; raise "
                    "average_budget or lower min_budget"
                )
            object.__setattr__(self, "average_budget", average)

    def allocate(
        self,
        marginals: npt.ArrayLike,
        total_budget: int | None = None,
        *,
        min_budget: int | None = None,
    ) -> IntArray:
        """Budgets for one batch.

        Args:
            marginals: ``(n, B)`` predicted marginal rewards with ``B >= max_budget``; columns
                beyond ``max_budget`` are ignored (it caps every request).
            total_budget: units for this batch; ``None`` means ``floor(average_budget · n)``.
            min_budget: units every request receives (the larger of this and the field).

        Returns:
            ``(n,)`` int64 budgets in ``[min_budget, max_budget]`` summing to at most the total.
        """
        matrix = np.asarray(marginals)
        cap = self.max_budget if self.max_budget is not None else matrix.shape[-1]
        if matrix.ndim != 2 or matrix.shape[1] < cap:
            raise ConfigError(
                f"marginals must have shape (n, B) with B >= max_budget={self.max_budget}, got "
                f"shape {matrix.shape}; predict at least max_budget columns or lower max_budget"
            )
        if total_budget is None:
            if self.average_budget is None:
                raise ConfigError(
                    "total_budget is required when the OnlineAllocator has no average_budget; "
                    "pass allocate(marginals, total_budget) or OnlineAllocator(average_budget=...)"
                )
            total_budget = floor_total(self.average_budget, matrix.shape[0])
        floor = max(self.min_budget, check_int("min_budget", min_budget or 0))
        return allocate(matrix[:, :cap], total_budget, min_budget=floor)
