"""Compute saved at matched quality, and the share of the oracle's gain a policy captures."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError
from howhard.evaluation.curves import Curve, uniform_curve

__all__ = ["budget_to_reach", "compute_savings", "oracle_gain_fraction", "savings_vs_uniform"]

FloatArray = npt.NDArray[np.float64]

#: Below this oracle-over-uniform gain, the share of it a method captures is undefined (NaN).
MIN_ORACLE_GAIN = 1e-12


def budget_to_reach(baseline: Curve, quality: npt.ArrayLike) -> FloatArray:
    """Average budget the baseline needs to reach each quality, interpolating linearly.

    The baseline's quality is read as a function of the budget it *spent*, made non-decreasing
    (spending more can always imitate spending less) and inverted piecewise linearly.

    Returns:
        Budgets, NaN where the quality is above anything the baseline reaches on its curve.
    """
    order = np.argsort(baseline.spent, kind="stable")
    spent = baseline.spent[order]
    reached = np.maximum.accumulate(baseline.quality[order])
    targets = np.atleast_1d(np.asarray(quality, dtype=np.float64))
    needed = np.full(targets.shape, np.nan)
    for k, target in enumerate(targets):
        hits = np.flatnonzero(reached >= target)
        if hits.size == 0:
            continue
        first = int(hits[0])
        if first == 0:
            needed[k] = spent[0]
            continue
        # Linear between the last point below the target and the first at or above it.
        q0, q1 = reached[first - 1], reached[first]
        share = (target - q0) / (q1 - q0)
        needed[k] = spent[first - 1] + share * (spent[first] - spent[first - 1])
    return needed


def compute_savings(method: Curve, baseline: Curve) -> FloatArray:
    """Fraction of the baseline's compute the method saves at each of its points.

    ``1 - spent_method / budget_baseline_needs_for_the_same_quality``: 0.4 means the method
    matches the baseline with 40% less compute. NaN where the baseline never reaches the
    method's quality on its curve or needs no compute at all.

    For an exact uniform baseline use :func:`savings_vs_uniform`, or build the baseline curve on
    every integer budget (uniform quality is linear between consecutive integers).
    """
    needed = budget_to_reach(baseline, method.quality)
    with np.errstate(divide="ignore", invalid="ignore"):
        saving: FloatArray = np.where(needed > 0, 1.0 - method.spent / needed, np.nan)
    return saving


def savings_vs_uniform(method: Curve, true_marginals: npt.ArrayLike) -> FloatArray:
    """:func:`compute_savings` against uniform best-of-k, inverted exactly.

    Uniform quality is piecewise linear between integer budgets (floor/ceil mix), so a uniform
    curve on every integer ``0..B_max`` is the exact baseline.
    """
    width = np.asarray(true_marginals).shape[-1]
    baseline = uniform_curve(true_marginals, np.arange(width + 1, dtype=np.float64))
    return compute_savings(method, baseline)


def oracle_gain_fraction(method: Curve, uniform: Curve, oracle: Curve) -> FloatArray:
    """Share of the oracle's gain over uniform that the method captures, point by point.

    ``(q_method - q_uniform) / (q_oracle - q_uniform)`` at each average budget of the common
    grid: 1 means as good as the oracle, 0 no better than uniform. NaN where the oracle gains
    less than ``MIN_ORACLE_GAIN``.
    """
    for curve in (uniform, oracle):
        if curve.budgets.shape != method.budgets.shape or not np.allclose(
            curve.budgets, method.budgets
        ):
            raise ConfigError(
                f"curves must share one budget grid, but {curve.name!r} has "
                f"{curve.budgets.tolist()} and {method.name!r} has {method.budgets.tolist()}; "
                "evaluate every policy on the same average_budgets"
            )
    gain = oracle.quality - uniform.quality
    with np.errstate(divide="ignore", invalid="ignore"):
        share: FloatArray = np.where(
            gain > MIN_ORACLE_GAIN, (method.quality - uniform.quality) / gain, np.nan
        )
    return share
