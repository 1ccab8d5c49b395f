"""Baseline allocations that adaptive policies are measured against.

Uniform best-of-k (everyone gets the same budget), random routing (a random fraction goes to the
strong procedure) and the oracle (the exact optimum on the true marginal rewards).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError
from howhard.policies.online import allocate

__all__ = ["oracle_budgets", "random_routing", "uniform_budgets"]

IntArray = npt.NDArray[np.int64]


def _check_count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ConfigError(f"n must be an int >= 0, got {value!r}; pass the number of requests")
    return int(value)


def _check_fraction(name: str, value: Any, upper: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ConfigError(f"{name} must be a number, got {value!r}; pass e.g. {name}=0.5")
    result = float(value)
    if not (0.0 <= result <= upper):
        raise ConfigError(
            f"{name} must lie in [0, {upper:g}], got {value}; pass a value in that range"
        )
    return result


def uniform_budgets(n: int, average_budget: float, max_budget: int) -> IntArray:
    """Uniform best-of-k with a fractional average: a deterministic ``floor``/``ceil`` mix.

    ``floor(average_budget · n)`` units are spread as evenly as possible: every request gets
    ``floor(average_budget)`` and the leftover units go to requests spaced evenly through the
    batch (not the first few, so a batch sorted by difficulty is not biased). When
    ``average_budget · n`` is an integer the average is met exactly.

    Args:
        n: number of requests.
        average_budget: target units per request, in ``[0, max_budget]``.
        max_budget: most units one request may receive, ``>= 1``.

    Returns:
        ``(n,)`` int64 budgets, each ``floor(average_budget)`` or one more.
    """
    count = _check_count(n)
    if isinstance(max_budget, bool) or not isinstance(max_budget, int | np.integer):
        raise ConfigError(f"max_budget must be an int >= 1, got {max_budget!r}; pass e.g. 16")
    if max_budget < 1:
        raise ConfigError(f"max_budget must be >= 1, got {max_budget}; pass e.g. 16")
    average = _check_fraction("average_budget", average_budget, float(max_budget))
    total = min(math.floor(average * count + 1e-9), int(max_budget) * count)
    base, extra = divmod(total, count) if count else (0, 0)
    index = np.arange(count, dtype=np.int64)
    # Request i gets a leftover unit when floor((i + 1)·extra/n) steps up: evenly spaced picks.
    bumped = (index + 1) * extra // max(count, 1) - index * extra // max(count, 1)
    result: IntArray = base + bumped
    return result


def random_routing(n: int, strong_fraction: float, *, seed: int) -> IntArray:
    """Route a uniformly random ``floor(strong_fraction · n)`` requests to the strong procedure.

    Args:
        n: number of requests.
        strong_fraction: share of requests sent to the strong procedure, in ``[0, 1]``.
        seed: seed of the random choice (the result is a deterministic function of it).

    Returns:
        ``(n,)`` int64 array: 1 for the strong procedure (one unit bought), 0 for the weak one.
    """
    count = _check_count(n)
    fraction = _check_fraction("strong_fraction", strong_fraction, 1.0)
    strong = math.floor(fraction * count + 1e-9)
    chosen = np.random.default_rng(seed).permutation(count)[:strong]
    result: IntArray = np.zeros(count, dtype=np.int64)
    result[chosen] = 1
    return result


def oracle_budgets(
    true_marginals: npt.ArrayLike, total_budget: int, *, min_budget: int = 0
) -> IntArray:
    """The oracle policy: :func:`~howhard.policies.allocate` on the *true* marginal rewards.

    Its quality is the ceiling any predictor of marginal rewards can reach at that budget.

    Args:
        true_marginals: ``(n, max_budget)`` measured marginal rewards.
        total_budget: units to spend across the batch.
        min_budget: units every request receives regardless.
    """
    return allocate(true_marginals, total_budget, min_budget=min_budget)
