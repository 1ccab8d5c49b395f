"""Quality-versus-average-budget curves for uniform, online, offline and oracle allocation.

Each curve evaluates a policy on the same requests at every average budget of a grid, scoring
its allocations with the *true* marginal rewards (exact expectations, no sampling noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError
from howhard.evaluation.quality import expected_quality, quality_table, uniform_quality
from howhard.policies.offline import OfflineAllocator
from howhard.policies.online import allocate

__all__ = [
    "Curve",
    "offline_curve",
    "online_curve",
    "oracle_curve",
    "quality_curves",
    "uniform_curve",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class Curve:
    """A policy's expected quality at each average budget of a grid.

    Attributes:
        name: the policy ("uniform", "online", "offline", "oracle" or a caller's label).
        budgets: ``(k,)`` average budget the policy was given at each point.
        spent: ``(k,)`` average units it actually used (less when units are worthless, and
            different from ``budgets`` for the offline table, which meets budgets on average).
        quality: ``(k,)`` mean expected quality of its allocation.
    """

    name: str
    budgets: FloatArray
    spent: FloatArray
    quality: FloatArray


def _grid(average_budgets: npt.ArrayLike, max_budget: int) -> FloatArray:
    grid = np.asarray(average_budgets, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or not np.isfinite(grid).all() or (grid < 0).any():
        raise ConfigError(
            f"average_budgets must be a non-empty 1-D array of finite values >= 0, got {grid!r}; "
            "pass e.g. np.arange(1, 17)"
        )
    if grid.max() > max_budget:
        raise ConfigError(
            f"average_budgets must be <= max_budget={max_budget}, got {grid.max()}; "
            "pass more columns of marginal rewards or a smaller grid"
        )
    return grid


def _same_shape(true_marginals: FloatArray, predicted: npt.ArrayLike) -> FloatArray:
    guess = np.asarray(predicted, dtype=np.float64)
    if guess.shape != true_marginals.shape:
        raise ConfigError(
            f"predicted_marginals must match true_marginals' shape {true_marginals.shape}, got "
            f"{guess.shape}; predict one row of max_budget marginals per evaluated request"
        )
    return guess


def uniform_curve(true_marginals: npt.ArrayLike, average_budgets: npt.ArrayLike) -> Curve:
    """Uniform best-of-k, fractional averages as a floor/ceil mix (linear interpolation)."""
    table = quality_table(true_marginals)
    grid = _grid(average_budgets, table.shape[1] - 1)
    return Curve("uniform", grid, grid.copy(), uniform_quality(true_marginals, grid))


def online_curve(
    true_marginals: npt.ArrayLike,
    predicted_marginals: npt.ArrayLike,
    average_budgets: npt.ArrayLike,
    *,
    min_budget: int = 0,
    name: str = "online",
) -> Curve:
    """Exact per-batch allocation on predicted marginals, scored with the true ones.

    The whole evaluation set is one batch with ``floor(B · n)`` units at each average ``B``.
    """
    table = quality_table(true_marginals)
    truth = table[:, 1:] - table[:, :-1]
    n, width = truth.shape
    guess = _same_shape(truth, predicted_marginals)
    grid = _grid(average_budgets, width)
    spent, quality = np.empty_like(grid), np.empty_like(grid)
    for k, average in enumerate(grid):
        budgets = allocate(guess, math.floor(average * n + 1e-9), min_budget=min_budget)
        spent[k] = budgets.mean() if n else 0.0
        quality[k] = expected_quality(budgets, quality=table)
    return Curve(name, grid, spent, quality)


def oracle_curve(
    true_marginals: npt.ArrayLike, average_budgets: npt.ArrayLike, *, min_budget: int = 0
) -> Curve:
    """The oracle: online allocation on the true marginals, the ceiling for any predictor."""
    return online_curve(
        true_marginals, true_marginals, average_budgets, min_budget=min_budget, name="oracle"
    )


def offline_curve(
    true_marginals: npt.ArrayLike,
    scores: npt.ArrayLike,
    fit_scores: npt.ArrayLike,
    fit_marginals: npt.ArrayLike,
    average_budgets: npt.ArrayLike,
    *,
    n_bins: int = 10,
    name: str = "offline",
) -> Curve:
    """A score-binned table fitted on a held-out set, then served request by request.

    Args:
        true_marginals: ``(n, B)`` true marginal rewards of the evaluated requests.
        scores: ``(n,)`` predicted scores of the evaluated requests.
        fit_scores: ``(m,)`` predicted scores of the held-out fit set.
        fit_marginals: ``(m, B)`` marginal rewards of the fit set (measured, as in the paper).
        average_budgets: grid of average budgets.
        n_bins: bins of the table.
        name: label of the curve.
    """
    table = quality_table(true_marginals)
    width = table.shape[1] - 1
    grid = _grid(average_budgets, width)
    spent, quality = np.empty_like(grid), np.empty_like(grid)
    for k, average in enumerate(grid):
        allocator = OfflineAllocator.fit(
            fit_scores, fit_marginals, float(average), n_bins, max_budget=width
        )
        budgets = allocator.budgets(scores)
        if budgets.shape != (table.shape[0],):
            raise ConfigError(
                f"scores must hold one score per evaluated request ({table.shape[0]}), got "
                f"shape {budgets.shape}; pass the evaluated requests' predicted scores"
            )
        spent[k] = budgets.mean() if budgets.size else 0.0
        quality[k] = expected_quality(budgets, quality=table)
    return Curve(name, grid, spent, quality)


def quality_curves(
    true_marginals: npt.ArrayLike,
    average_budgets: npt.ArrayLike,
    *,
    predicted_marginals: npt.ArrayLike | None = None,
    scores: npt.ArrayLike | None = None,
    fit_scores: npt.ArrayLike | None = None,
    fit_marginals: npt.ArrayLike | None = None,
    n_bins: int = 10,
    min_budget: int = 0,
) -> dict[str, Curve]:
    """Every curve the inputs allow, keyed by name.

    Always "uniform" and "oracle"; "online" when ``predicted_marginals`` is given; "offline"
    when ``scores``, ``fit_scores`` and ``fit_marginals`` are all given.
    """
    curves = {
        "uniform": uniform_curve(true_marginals, average_budgets),
        "oracle": oracle_curve(true_marginals, average_budgets, min_budget=min_budget),
    }
    if predicted_marginals is not None:
        curves["online"] = online_curve(
            true_marginals, predicted_marginals, average_budgets, min_budget=min_budget
        )
    offline_inputs = (scores, fit_scores, fit_marginals)
    if scores is not None and fit_scores is not None and fit_marginals is not None:
        curves["offline"] = offline_curve(
            true_marginals, scores, fit_scores, fit_marginals, average_budgets, n_bins=n_bins
        )
    elif any(value is not None for value in offline_inputs):
        raise ConfigError(
            "the offline curve needs scores=, fit_scores= and fit_marginals= together; "
            "pass all three or none"
        )
    return curves
