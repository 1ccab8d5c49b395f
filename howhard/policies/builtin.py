"""Built-in policies: uniform, adaptive (predictor + allocator), and weak/strong routing.

Each takes the scheduler's :class:`~howhard.types.BudgetBounds` with every batch; called on its
own (tests, notebooks) without bounds, a policy uses only the limits it was constructed with.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError, PolicyError
from howhard.policies.base import Predictor, takes_arguments
from howhard.types import BudgetBounds, Request

__all__ = [
    "AdaptivePolicy",
    "OfflineAllocatorLike",
    "OnlineAllocatorLike",
    "RandomRoutingPolicy",
    "RoutingPolicy",
    "UniformPolicy",
]


@runtime_checkable
class OnlineAllocatorLike(Protocol):
    """Solves each batch: ``allocate(marginals (n, B_max), total_budget) -> budgets (n,)``.

    When the bounds set a ``min_budget``, it is passed as ``min_budget=`` (as to
    :func:`howhard.policies.allocate`).
    """

    def allocate(
        self, marginals: npt.NDArray[np.float64], total_budget: int | None = None
    ) -> npt.NDArray[np.int64]:
        """Budgets for the batch, summing to at most ``total_budget``."""
        ...


@runtime_checkable
class OfflineAllocatorLike(Protocol):
    """Serves each request from a fitted table: ``budgets(scores (n,)) -> budgets (n,)``."""

    def budgets(self, scores: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """Budgets for requests with these predicted scores."""
        ...


def _check_fraction(value: float | None, name: str) -> None:
    if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ConfigError(f"{name} must be in [0, 1] or None, got {value!r}")


def _cap(own: int | None, bounds: BudgetBounds | None) -> int | None:
    """The tighter of a policy's own cap and the scheduler's ``max_budget``."""
    if bounds is None:
        return own
    return bounds.max_budget if own is None else min(own, bounds.max_budget)


class UniformPolicy:
    """Splits the batch's budget evenly; the remainder goes one unit each to the earliest requests.

    Budgets are capped at ``bounds.max_budget`` (and at ``max_budget`` if given; units above
    the cap stay unspent and are carried by the scheduler); ``min_budget`` is the floor the
    scheduler checks.
    """

    def __init__(self, *, max_budget: int | None = None) -> None:
        if max_budget is not None and max_budget < 0:
            raise ConfigError(f"max_budget must be >= 0 or None, got {max_budget!r}")
        self.max_budget = max_budget

    async def allocate(
        self,
        requests: Sequence[Request],
        total_budget: int,
        bounds: BudgetBounds | None = None,
    ) -> list[int]:
        """Even split of ``total_budget`` over ``requests``."""
        n = len(requests)
        if n == 0:
            return []
        base, extra = divmod(total_budget, n)
        budgets = [base + 1] * extra + [base] * (n - extra)
        cap = _cap(self.max_budget, bounds)
        if cap is not None:
            budgets = [min(b, cap) for b in budgets]
        return budgets


def _predict_checked(marginals: object, n: int, predictor: object) -> npt.NDArray[np.float64]:
    array = np.asarray(marginals, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != n:
        raise PolicyError(
            f"{type(predictor).__name__}.predict returned shape {array.shape}; "
            f"expected ({n}, max_budget)"
        )
    if not np.isfinite(array).all():
        raise PolicyError(f"{type(predictor).__name__}.predict returned NaN or infinite marginals")
    return array


class AdaptivePolicy:
    """Predicts each request's marginal rewards, then lets an allocator split the budget.

    With an *online* allocator (``allocate(marginals, total_budget)``) each batch is solved
    exactly. With an *offline* allocator (``budgets(scores)``, scores from ``score_fn`` of the
    marginals, default column 0 = λ for binary rewards) each request is served from the fitted
    table; when a batch's table budgets exceed its total, the units with the smallest predicted
    marginal value are dropped first (the scheduler carries any shortfall to later batches).

    Predicted rows can wobble upward (a regression probe is not constrained), while the exact
    allocator needs non-increasing rows; with ``monotone=True`` (default) each row is replaced by
    its running minimum first, the closest non-increasing row that never overstates a unit.

    The predictor is asked for ``bounds.max_budget`` columns (called without bounds: the
    predictor's or else the allocator's ``max_budget``), so neither needs its own copy of the
    bounds.
    """

    def __init__(
        self,
        predictor: Predictor,
        allocator: OnlineAllocatorLike | OfflineAllocatorLike,
        *,
        score_fn: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]] | None = None,
        monotone: bool = True,
    ) -> None:
        if not isinstance(allocator, OnlineAllocatorLike | OfflineAllocatorLike):
            raise ConfigError(
                f"allocator must have allocate(marginals, total_budget) or budgets(scores), "
                f"got {type(allocator).__name__}"
            )
        self.predictor = predictor
        self.allocator = allocator
        self._score_fn = score_fn or (lambda m: m[:, 0])
        self.monotone = monotone

    async def allocate(
        self,
        requests: Sequence[Request],
        total_budget: int,
        bounds: BudgetBounds | None = None,
    ) -> list[int]:
        """Budgets from the predicted marginals."""
        if not requests:
            return []
        width = _width(bounds, self.predictor, self.allocator)
        marginals = _predict_checked(
            await predict(self.predictor, requests, width), len(requests), self.predictor
        )
        if self.monotone:
            marginals = np.minimum.accumulate(marginals, axis=1)
        if isinstance(self.allocator, OnlineAllocatorLike):
            floor = bounds.min_budget if bounds is not None else 0
            solve = self.allocator.allocate
            raw = (
                solve(marginals, total_budget, min_budget=floor)  # type: ignore[call-arg]
                if floor
                else solve(marginals, total_budget)
            )
            return [int(b) for b in _integer_budgets(raw, self)]
        budgets = _integer_budgets(self.allocator.budgets(self._score_fn(marginals)), self)
        if bounds is None:
            return trim_to_total(budgets, marginals, total_budget)
        budgets = np.clip(budgets, bounds.min_budget, bounds.max_budget)
        return trim_to_total(budgets, marginals, total_budget, min_budget=bounds.min_budget)


def _width(bounds: BudgetBounds | None, *parts: object) -> int:
    """Columns to predict: the bounds' ``max_budget``; standalone, the first part's own."""
    if bounds is not None:
        return bounds.max_budget
    for part in parts:
        own = getattr(part, "max_budget", None)
        if isinstance(own, int) and own >= 1:
            return own
    raise PolicyError(
        "no bounds were given and neither the predictor nor the allocator sets max_budget; "
        "call allocate(requests, total_budget, bounds) (the scheduler always passes them)"
    )


async def predict(
    predictor: Predictor, requests: Sequence[Request], max_budget: int
) -> npt.NDArray[np.float64]:
    """``predictor.predict(requests, max_budget)``, or the older one-argument form.

    A predictor written before bounds were passed (``predict(requests)``, its own
    ``max_budget``) still works, with a ``DeprecationWarning``.
    """
    if takes_arguments(predictor.predict, 2):
        return await predictor.predict(requests, max_budget)
    warnings.warn(
        f"{type(predictor).__name__}.predict(requests) is deprecated: take the columns wanted "
        "as a second argument, predict(requests, max_budget)",
        DeprecationWarning,
        stacklevel=2,
    )
    legacy: npt.NDArray[np.float64] = await predictor.predict(requests)  # type: ignore[call-arg]
    return legacy


def _integer_budgets(values: object, policy: AdaptivePolicy) -> npt.NDArray[np.int64]:
    # int() or an int64 cast would silently floor 1.7 to 1 (and turn NaN into garbage).
    array = np.asarray(values)
    if array.dtype.kind not in "iu" and not (
        array.dtype.kind == "f" and np.isfinite(array).all() and (array == np.round(array)).all()
    ):
        raise PolicyError(
            f"{type(policy.allocator).__name__} returned non-integer budgets "
            f"{array.tolist()!r}; an allocator returns whole units (an integer array)"
        )
    return array.astype(np.int64)


def trim_to_total(
    budgets: npt.NDArray[np.int64],
    marginals: npt.NDArray[np.float64],
    total_budget: int,
    *,
    min_budget: int = 0,
) -> list[int]:
    """Drop the lowest-value units until ``sum(budgets) <= total_budget``.

    ``budgets: (n,)``, ``marginals: (n, B_max)``; unit ``j`` of request ``i`` is worth
    ``marginals[i, j]`` (0 beyond ``B_max``). Ties drop later requests' units first. The first
    ``min_budget`` units of every request are never dropped.
    """
    budgets = np.asarray(budgets, dtype=np.int64)
    excess = int(budgets.sum()) - total_budget
    if excess <= 0:
        return [int(b) for b in budgets]
    rows, cols = np.nonzero(np.arange(int(budgets.max()))[None, :] < budgets[:, None])
    keep = cols >= min_budget
    rows, cols = rows[keep], cols[keep]
    width = marginals.shape[1]
    values = np.where(cols < width, marginals[rows, np.minimum(cols, width - 1)], 0.0)
    # Drop the `excess` cheapest units; within a row the last unit goes first.
    order = np.lexsort((-cols, -rows, values))
    drop_rows = rows[order[:excess]]
    trimmed = budgets - np.bincount(drop_rows, minlength=len(budgets))
    return [int(b) for b in trimmed]


class RoutingPolicy:
    """Sends the requests most likely to gain from the strong model to it (budget 1), others 0.

    ``predictor`` returns ``(n, 1)``: ``P(strong ≻ weak | x)`` in column 0. At most
    ``strong_fraction * n`` (rounded down) requests go strong when set, and never more than the
    batch's budget allows. Ties go to the earlier request.
    """

    def __init__(self, predictor: Predictor, strong_fraction: float | None = None) -> None:
        _check_fraction(strong_fraction, "strong_fraction")
        self.predictor = predictor
        self.strong_fraction = strong_fraction

    async def allocate(
        self,
        requests: Sequence[Request],
        total_budget: int,
        bounds: BudgetBounds | None = None,
    ) -> list[int]:
        """1 for the top requests by predicted preference, 0 for the rest."""
        n = len(requests)
        if n == 0:
            return []
        predicted = await predict(self.predictor, requests, 1)
        scores = _predict_checked(predicted, n, self.predictor)[:, 0]
        k = _strong_count(n, total_budget, self.strong_fraction)
        budgets = [0] * n
        for i in np.argsort(-scores, kind="stable")[:k]:
            budgets[int(i)] = 1
        return _within(budgets, bounds)


def _within(budgets: list[int], bounds: BudgetBounds | None) -> list[int]:
    """Routing budgets (0 weak, 1 strong) raised to the bounds' floor and cut to their cap.

    The scheduler's totals cover ``min_budget`` per request, so raising stays within them.
    """
    if bounds is None:
        return budgets
    return [min(max(b, bounds.min_budget), bounds.max_budget) for b in budgets]


def _strong_count(n: int, total_budget: int, strong_fraction: float | None) -> int:
    k = min(n, total_budget)
    if strong_fraction is not None:
        k = min(k, math.floor(strong_fraction * n + 1e-9))
    return max(k, 0)


class RandomRoutingPolicy:
    """Routing baseline: a seeded random subset of the batch goes to the strong model."""

    def __init__(self, strong_fraction: float | None = None, *, seed: int | None = 0) -> None:
        _check_fraction(strong_fraction, "strong_fraction")
        self.strong_fraction = strong_fraction
        self._rng = random.Random(seed)

    async def allocate(
        self,
        requests: Sequence[Request],
        total_budget: int,
        bounds: BudgetBounds | None = None,
    ) -> list[int]:
        """1 for a random ``k`` of the batch, 0 for the rest."""
        n = len(requests)
        k = _strong_count(n, total_budget, self.strong_fraction)
        budgets = [0] * n
        for i in self._rng.sample(range(n), k):
            budgets[i] = 1
        return _within(budgets, bounds)
