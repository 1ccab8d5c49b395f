"""Marginal rewards: how much the j-th unit of compute adds to a request's expected reward.

``Δ_ij = q(x_i, j) - q(x_i, j - 1)`` with ``q(x, 0) = 0``, so ``q(x_i, b) = Σ_{j≤b} Δ_ij``. The
functions here turn what can be measured (a success probability, sampled rewards, strong-vs-weak
reward pairs) into exact marginal rewards; :func:`howhard.policies.allocate` consumes them.

A leaf: it imports nothing of howhard but the error types, so policies, probes, training and
evaluation all share this one copy of the maths (see ``docs/architecture.md``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError

__all__ = [
    "geometric_marginal",
    "log_factorials",
    "marginals_from_rewards",
    "marginals_from_success_prob",
    "preference_prob",
    "success_rate",
]

FloatArray = npt.NDArray[np.float64]


def _check_max_budget(max_budget: Any) -> int:
    if isinstance(max_budget, bool) or not isinstance(max_budget, int | np.integer):
        raise ConfigError(
            f"max_budget must be an int >= 1, got {max_budget!r} ({type(max_budget).__name__}); "
            "pass a whole number of compute units, e.g. max_budget=16"
        )
    if max_budget < 1:
        raise ConfigError(f"max_budget must be >= 1, got {max_budget}; pass e.g. max_budget=16")
    return int(max_budget)


def _as_float_array(name: str, value: Any, ndim: int, shape_doc: str) -> FloatArray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{name} must be a numeric array of shape {shape_doc}, got {type(value).__name__}; "
            "pass a numpy array of floats"
        ) from exc
    if array.ndim != ndim:
        raise ConfigError(
            f"{name} must have shape {shape_doc}, got an array with shape {array.shape}; "
            f"reshape it to {ndim} dimension(s)"
        )
    if not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ConfigError(
            f"{name} must be finite, got {array[tuple(bad)]} at index "
            f"{tuple(int(i) for i in bad)}; drop or repair NaN/inf entries before calling"
        )
    return array


def geometric_marginal(p: FloatArray, j: npt.NDArray[np.int64]) -> FloatArray:
    """``p·(1-p)^j`` elementwise: the marginal reward of unit ``j + 1`` (``j`` counts from 0).

    This one expression is shared by :func:`marginals_from_success_prob` and the matrix-free
    allocator so that both see bit-identical values and therefore break ties identically.
    """
    result: FloatArray = np.multiply(p, np.power(np.subtract(1.0, p), j))
    return result


def marginals_from_success_prob(p: npt.ArrayLike, max_budget: int) -> FloatArray:
    """Marginal rewards of best-of-k with a binary reward: ``Δ_j = p·(1-p)^(j-1)``.

    Args:
        p: ``(n,)`` single-sample success probabilities λ, each in ``[0, 1]``.
        max_budget: number of units ``B_max`` (columns of the result), ``>= 1``.

    Returns:
        ``(n, max_budget)`` float64 array; column 0 is the first unit (``Δ_1 = p``). Rows are
        non-increasing exactly, in floating point too.
    """
    budget = _check_max_budget(max_budget)
    probs = _as_float_array("p", p, 1, "(n,)")
    _check_probabilities(probs)
    marginals = geometric_marginal(probs[:, None], np.arange(budget, dtype=np.int64)[None, :])
    # Mathematically non-increasing; the running minimum removes any last-ulp wobble of pow() so
    # the rows satisfy the allocator's contract exactly (a no-op whenever pow() is monotone).
    np.minimum.accumulate(marginals, axis=1, out=marginals)
    return marginals


def _check_probabilities(probs: FloatArray) -> None:
    bad = (probs < 0.0) | (probs > 1.0)
    if bad.any():
        index = int(np.argmax(bad))
        raise ConfigError(
            f"p must lie in [0, 1], got {probs[index]} at index {index}; "
            "pass probabilities (clip or apply a sigmoid to raw scores)"
        )


def success_rate(rewards: npt.ArrayLike) -> FloatArray:
    """Single-sample success rate ``λ_i = c_i / m`` from ``(n, m)`` binary rewards → ``(n,)``.

    The soft label of the λ head, and the λ behind :func:`marginals_from_success_prob`.
    Rewards other than 0 and 1 are a ``ConfigError``: real-valued rewards need the whole
    marginal vector (:func:`marginals_from_rewards`), not a success rate.
    """
    values = _as_float_array("rewards", rewards, 2, "(n, m)")
    if values.shape[1] < 1:
        raise ConfigError(f"rewards must have shape (n, m) with m >= 1, got {values.shape}")
    binary = np.isin(values, (0.0, 1.0))
    if not binary.all():
        raise ConfigError(
            f"the lambda head needs binary rewards (0 or 1), found {values[~binary][0]}; use "
            "head='delta' for real-valued rewards"
        )
    result: FloatArray = values.mean(axis=1)
    return result


def log_factorials(m: int) -> FloatArray:
    """``log k!`` for ``k = 0..m`` (via lgamma, exact to a few ulps even for large m)."""
    return np.array([math.lgamma(k + 1.0) for k in range(m + 1)], dtype=np.float64)


def _best_of_weights(m: int, max_budget: int, replace: bool) -> FloatArray:
    """``W[j-1, i-1]`` = weight of the i-th smallest of m rewards in ``E[max of j draws]``.

    Without replacement the weight is ``C(i-1, j-1)/C(m, j)`` (the j-subset's maximum is the i-th
    order statistic); with replacement it is ``(i/m)^j - ((i-1)/m)^j``.
    """
    i = np.arange(1, m + 1, dtype=np.float64)[None, :]
    j = np.arange(1, max_budget + 1, dtype=np.float64)[:, None]
    if replace:
        weights: FloatArray = np.power(i / m, j) - np.power((i - 1.0) / m, j)
        return weights
    valid = i >= j
    log_fact = log_factorials(m)
    # log C(i-1, j-1) - log C(m, j), with integer indices into the log-factorial table; the
    # clipped index keeps entries where i < j (weight 0) in range.
    ii = i.astype(np.int64)
    jj = j.astype(np.int64)
    log_w = (
        log_fact[ii - 1]
        - log_fact[jj - 1]
        - log_fact[np.maximum(ii - jj, 0)]
        - (log_fact[m] - log_fact[jj] - log_fact[m - jj])
    )
    weights = np.where(valid, np.exp(log_w), 0.0)
    # Each row sums to 1 exactly in real arithmetic; renormalising cancels lgamma's ~1e-12
    # rounding so that constant rewards give exactly zero gain beyond the first unit.
    weights /= weights.sum(axis=1, keepdims=True)
    return weights


def marginals_from_rewards(
    rewards: npt.ArrayLike, max_budget: int, *, replace: bool = False
) -> FloatArray:
    """Exact expected best-of-j increments from ``m`` sampled rewards per query.

    ``E_j`` is the expected maximum reward of ``j`` of the query's samples, computed exactly from
    the order statistics (no bootstrap noise): without replacement (default) the unbiased
    U-statistic ``E_j = Σ_i r_(i)·C(i-1, j-1)/C(m, j)``, with replacement
    ``E_j = Σ_i r_(i)·((i/m)^j - ((i-1)/m)^j)``. Binomials are evaluated in log space, so ``m``
    up to a few thousand is stable. The result is ``Δ_1 = E_1`` (the mean reward) and
    ``Δ_j = E_j - E_{j-1}``; for 0/1 rewards with ``c`` successes this is the increment of
    ``1 - C(m-c, j)/C(m, j)``.

    Args:
        rewards: ``(n, m)`` sampled rewards, ``m >= 1`` per query, finite.
        max_budget: number of units ``B_max`` (columns of the result); ``<= m`` unless
            ``replace=True``.
        replace: evaluate draws with replacement (any ``max_budget``) instead of j-subsets.

    Returns:
        ``(n, max_budget)`` float64 marginal rewards. Rows are non-increasing when rewards are
        ``>= 0`` (the expected maximum is concave in ``j``, and ``Δ_1`` is the mean). With
        negative rewards only columns ``1:`` are guaranteed non-increasing, since buying no
        sample counts as reward 0: shift rewards to be non-negative, or allocate with
        ``min_budget=1`` (every request answered), which ignores the first column's order.
    """
    budget = _check_max_budget(max_budget)
    values = _as_float_array("rewards", rewards, 2, "(n, m)")
    n, m = values.shape
    if m < 1:
        raise ConfigError(
            f"rewards must hold at least one sample per query, got shape {values.shape}; "
            "collect samples first"
        )
    if not replace and budget > m:
        raise ConfigError(
            f"max_budget must be <= the number of samples m={m} without replacement, got "
            f"{budget}; collect more samples, lower max_budget, or pass replace=True"
        )
    weights = _best_of_weights(m, budget, replace)
    # Differencing the weights gives Δ directly, avoiding cancellation in E_j - E_{j-1}.
    delta_weights = np.diff(weights, axis=0, prepend=0.0)
    ordered = np.sort(values, axis=1)
    marginals: FloatArray = ordered @ delta_weights.T
    # From the second unit on, Δ_j = E[(r_new - best so far)^+] is non-increasing in j; the
    # running minimum only removes rounding wobble. The first unit is the mean reward, which
    # exceeds Δ_2 whenever rewards are >= 0 but need not when they can be negative.
    np.minimum.accumulate(marginals[:, 1:], axis=1, out=marginals[:, 1:])
    non_negative = ordered[:, 0] >= 0.0
    marginals[non_negative] = np.minimum.accumulate(marginals[non_negative], axis=1)
    return marginals.reshape(n, budget)


def _sigmoid(x: FloatArray) -> FloatArray:
    result: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free for any finite x
    return result


def preference_prob(strong_rewards: npt.ArrayLike, weak_rewards: npt.ArrayLike) -> FloatArray:
    """Routing label ``P(strong ≻ weak | x) = E[sigmoid(r_S - r_W)]`` over all sample pairs.

    Args:
        strong_rewards: ``(n, m_s)`` rewards of the strong procedure's samples.
        weak_rewards: ``(n, m_w)`` rewards of the weak procedure's samples, same ``n``.

    Returns:
        ``(n,)`` float64 probabilities: the mean of ``sigmoid(r_S[i, a] - r_W[i, b])`` over all
        ``m_s·m_w`` pairs of query ``i`` (the paper's Eq. 8).
    """
    strong = _as_float_array("strong_rewards", strong_rewards, 2, "(n, m_s)")
    weak = _as_float_array("weak_rewards", weak_rewards, 2, "(n, m_w)")
    if strong.shape[0] != weak.shape[0]:
        raise ConfigError(
            f"strong_rewards and weak_rewards must describe the same queries, got "
            f"{strong.shape[0]} and {weak.shape[0]} rows; pass one row per query to both"
        )
    if strong.shape[1] == 0 or weak.shape[1] == 0:
        raise ConfigError(
            f"strong_rewards and weak_rewards need at least one sample per query, got shapes "
            f"{strong.shape} and {weak.shape}; collect samples first"
        )
    n = strong.shape[0]
    result = np.empty(n, dtype=np.float64)
    # Chunk the (rows, m_s, m_w) pair tensor so memory stays bounded for large batches.
    rows_per_chunk = max(1, 4_000_000 // (strong.shape[1] * weak.shape[1]))
    for start in range(0, n, rows_per_chunk):
        stop = start + rows_per_chunk
        diff = strong[start:stop, :, None] - weak[start:stop, None, :]
        result[start:stop] = _sigmoid(diff).mean(axis=(1, 2))
    return result
