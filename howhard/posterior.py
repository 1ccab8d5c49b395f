"""Beliefs about a request's single-sample success probability λ, on a fixed grid.

Every prior is a distribution on :data:`GRID` (λ = 0 exactly, 160 logit-spaced interior
points from sigmoid(-9) to sigmoid(7), λ = 1), so "never solved" carries its own mass and
every update is a sum.
A request's posterior after ``f`` failures and ``p`` passes is its prior times
``λ^p (1 - λ)^f``. With no pass yet, a round of ``k`` more samples is worth, per unit,
``v = (1 - E[(1 - λ)^k | f failures]) / k`` (the chance it holds a pass, per sample); ``v`` falls
with every failure and with the round's size for any prior, so a request's remaining rounds
have non-increasing values and "grant the next round to the highest value per unit" is an
index policy (the stream allocator in :mod:`howhard.policies.stream` prices it).

A leaf, pure numpy (no scipy at serving time): the procedures, the stream allocator, its
priors and the simulator share this one copy of the maths.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import numpy.typing as npt

__all__ = [
    "GRID",
    "forecast",
    "log_lik_counts",
    "logsumexp",
    "normal_cdf",
    "normalise",
    "round_sizes",
    "zero_inflated_logit_normal",
]

FloatArray = npt.NDArray[np.float64]

_INTERIOR: FloatArray = 1.0 / (1.0 + np.exp(-np.linspace(-9.0, 7.0, 160)))
GRID: FloatArray = np.concatenate([[0.0], _INTERIOR, [1.0]])
"""``(162,)`` the λ values every prior and posterior weighs."""
_EDGES: FloatArray = np.concatenate([[0.0], np.sqrt(_INTERIOR[1:] * _INTERIOR[:-1]), [1.0]])
with np.errstate(divide="ignore"):
    _EDGE_LOGITS: FloatArray = np.log(_EDGES) - np.log1p(-_EDGES)
_LOG_L: FloatArray = np.log(np.maximum(GRID, 1e-300))
_LOG_1L: FloatArray = np.log(np.maximum(1.0 - GRID, 1e-300))


def logsumexp(a: npt.ArrayLike, axis: int | None = None, keepdims: bool = False) -> FloatArray:
    """``log Σ exp(a)`` along ``axis``, safe for rows of ``-inf``."""
    x = np.asarray(a, dtype=np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out: FloatArray = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        out = np.squeeze(out, axis=axis) if axis is not None else out.reshape(())
    return out


def normalise(log_w: FloatArray) -> FloatArray:
    """Log-weights normalised to sum to one along the last axis."""
    result: FloatArray = log_w - logsumexp(log_w, axis=-1, keepdims=True)
    return result


def normal_cdf(x: npt.ArrayLike) -> FloatArray:
    """Φ(x), elementwise, to a relative error below 1.2e-7 in both tails (Numerical Recipes'
    Chebyshev ``erfc``; numpy has no ``erf`` and scipy is not a runtime dependency)."""
    z = -np.asarray(x, dtype=np.float64) / math.sqrt(2.0)
    a = np.abs(z)
    t = 1.0 / (1.0 + 0.5 * a)
    poly = -a * a - 1.26551223
    coeffs = (
        1.00002368,
        0.37409196,
        0.09678418,
        -0.18628806,
        0.27886807,
        -1.13520398,
        1.48851587,
        -0.82215223,
        0.17087277,
    )
    acc = np.zeros_like(t)
    for c in reversed(coeffs):
        acc = t * (c + acc)
    erfc = t * np.exp(poly + acc)
    result: FloatArray = 0.5 * np.where(z >= 0, erfc, 2.0 - erfc)
    return result


def zero_inflated_logit_normal(
    loc: npt.ArrayLike, scale: npt.ArrayLike, zero_logit: npt.ArrayLike
) -> FloatArray:
    """``(n, 162)`` log-weights: ``sigmoid(zero_logit)`` at λ = 0, else logit λ ~ N(loc, scale²).

    ``loc``, ``scale`` and ``zero_logit`` broadcast to ``(n,)``.
    """
    loc_, scale_, zl = np.broadcast_arrays(
        np.atleast_1d(np.asarray(loc, dtype=np.float64)),
        np.atleast_1d(np.asarray(scale, dtype=np.float64)),
        np.atleast_1d(np.asarray(zero_logit, dtype=np.float64)),
    )
    cdf = normal_cdf((_EDGE_LOGITS[None, :] - loc_[:, None]) / scale_[:, None])
    inner = np.diff(cdf, axis=1)
    inner = inner / np.maximum(inner.sum(axis=1, keepdims=True), 1e-300)
    zero = np.clip(1.0 / (1.0 + np.exp(-zl)), 1e-9, 1.0 - 1e-9)
    w = np.concatenate(
        [zero[:, None], (1.0 - zero)[:, None] * inner, np.zeros((len(zero), 1))], axis=1
    )
    result: FloatArray = np.log(np.maximum(w, 1e-300))
    return result


def log_lik_counts(passes: npt.ArrayLike, fails: npt.ArrayLike) -> FloatArray:
    """``(n, 162)`` log P(``passes``, ``fails`` in a given order | λ = GRID); 0·log 0 = 0."""
    k = np.atleast_1d(np.asarray(passes, dtype=np.float64))[:, None]
    f = np.atleast_1d(np.asarray(fails, dtype=np.float64))[:, None]
    out = k * _LOG_L[None, :] + f * _LOG_1L[None, :]
    out = np.where((k == 0) & (GRID[None, :] == 0.0), f * _LOG_1L[None, :], out)
    result: FloatArray = np.where((f == 0) & (GRID[None, :] == 1.0), k * _LOG_L[None, :], out)
    return result


@functools.lru_cache(maxsize=4096)
def _round_sizes(
    used: int, rounds: int, schedule: tuple[int, ...], max_budget: int
) -> tuple[int, ...]:
    sizes: list[int] = []
    total, r = used, rounds
    while total < max_budget:
        k = min(schedule[min(r, len(schedule) - 1)], max_budget - total)
        sizes.append(k)
        total += k
        r += 1
    return tuple(sizes)


def round_sizes(
    used: int, rounds: int, schedule: tuple[int, ...], max_budget: int
) -> tuple[int, ...]:
    """Sizes of the remaining rounds of a request that used ``used`` samples in ``rounds``
    rounds: ``schedule[r]`` for round ``r`` (the last size repeats), the last one cut to end at
    ``max_budget``."""
    return _round_sizes(used, rounds, tuple(schedule), max_budget)


_POW: FloatArray = np.power.outer(1.0 - GRID, np.arange(0, 513, dtype=np.float64))


def forecast(log_w: FloatArray, sizes: tuple[int, ...]) -> tuple[FloatArray, FloatArray]:
    """Value per unit and expected cost of each remaining round, for many requests at once.

    ``log_w``: ``(n, 162)`` posteriors (no pass seen yet); ``sizes``: the remaining rounds (the
    same for every row). Returns ``(values, costs)``, each ``(n, len(sizes))``: round ``r``'s
    chance of holding the first pass given it runs, per unit, and ``size_r · P(it runs)``.
    Values are non-increasing along a row.
    """
    n = log_w.shape[0]
    if not sizes:
        return np.zeros((n, 0)), np.zeros((n, 0))
    ends = np.cumsum((0, *sizes))
    w = np.exp(normalise(log_w))
    surv = w @ _POW[:, ends]
    alive = surv[:, :-1]
    k = np.asarray(sizes, dtype=np.float64)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(alive > 1e-300, (alive - surv[:, 1:]) / alive / k, 0.0)
    # The exact maths is non-increasing; this removes rounding wobble.
    values: FloatArray = np.minimum.accumulate(value, axis=1)
    costs: FloatArray = k * alive
    return values, costs
