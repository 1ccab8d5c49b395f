"""Expected quality of an allocation, computed exactly from true marginal rewards (no sampling).

``q(x_i, b) = Σ_{j≤b} Δ_ij``; the quality of budgets ``b`` is the mean of ``q(x_i, b_i)`` over
requests, e.g. the expected success rate of best-of-``b_i`` with a verifier.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError

__all__ = ["expected_quality", "quality_table", "uniform_quality"]

FloatArray = npt.NDArray[np.float64]


def _as_matrix(name: str, value: Any) -> FloatArray:
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{name} must be a numeric (n, B) array, got {type(value).__name__}; "
            "pass a numpy float array"
        ) from exc
    if matrix.ndim != 2:
        raise ConfigError(
            f"{name} must have shape (n, B), got shape {matrix.shape}; pass one row per request"
        )
    if not np.isfinite(matrix).all():
        raise ConfigError(f"{name} must be finite; replace NaN/inf entries before evaluating")
    return matrix


def quality_table(marginals: npt.ArrayLike) -> FloatArray:
    """``(n, B + 1)`` expected quality ``q(x_i, b)`` for ``b = 0..B`` from ``(n, B)`` marginals.

    Column 0 is ``q(x, 0) = 0`` (no compute, no reward), as in the paper's definition of Δ.
    """
    matrix = _as_matrix("marginals", marginals)
    table: FloatArray = np.zeros((matrix.shape[0], matrix.shape[1] + 1))
    np.cumsum(matrix, axis=1, out=table[:, 1:])
    return table


def expected_quality(
    budgets: npt.ArrayLike,
    marginals: npt.ArrayLike | None = None,
    *,
    quality: npt.ArrayLike | None = None,
) -> float:
    """Mean expected quality of ``budgets`` under the true marginals (or true quality table).

    Args:
        budgets: ``(n,)`` integer budgets, each in ``[0, B]``.
        marginals: ``(n, B)`` true marginal rewards Δ. Give this or ``quality``.
        quality: ``(n, B + 1)`` true expected quality ``q(x_i, b)`` for ``b = 0..B``.

    Returns:
        ``mean_i q(x_i, b_i)``.
    """
    if marginals is not None and quality is None:
        table = quality_table(marginals)
    elif quality is not None and marginals is None:
        table = _as_matrix("quality", quality)
    else:
        raise ConfigError(
            "expected_quality needs exactly one of marginals= or quality=; pass the true "
            "marginal rewards (n, B) or the quality table (n, B + 1)"
        )
    spend = np.asarray(budgets)
    if spend.shape != (table.shape[0],) or not np.issubdtype(spend.dtype, np.integer):
        raise ConfigError(
            f"budgets must be an integer array of shape ({table.shape[0]},), got dtype "
            f"{spend.dtype} and shape {spend.shape}; pass one int budget per request"
        )
    if spend.size and (spend.min() < 0 or spend.max() > table.shape[1] - 1):
        raise ConfigError(
            f"budgets must lie in [0, {table.shape[1] - 1}], got values in "
            f"[{spend.min()}, {spend.max()}]; evaluate with marginals covering every budget"
        )
    if spend.size == 0:
        return 0.0
    return float(table[np.arange(spend.size), spend].mean())


def uniform_quality(marginals: npt.ArrayLike, average_budgets: npt.ArrayLike) -> FloatArray:
    """Quality of uniform best-of-k at (possibly fractional) average budgets.

    A fractional average ``B`` is a ``floor``/``ceil`` mix (a ``B - floor(B)`` share of requests
    gets one more unit), whose expected quality is the linear interpolation of the mean quality
    at ``floor(B)`` and ``ceil(B)``.

    Args:
        marginals: ``(n, B_max)`` true marginal rewards.
        average_budgets: ``(k,)`` average budgets in ``[0, B_max]``.

    Returns:
        ``(k,)`` mean expected quality.
    """
    mean_q = quality_table(marginals).mean(axis=0)
    grid = np.asarray(average_budgets, dtype=np.float64)
    if grid.ndim != 1 or not np.isfinite(grid).all() or (grid < 0).any():
        raise ConfigError(
            f"average_budgets must be a 1-D array of finite values >= 0, got {grid!r}; "
            "pass e.g. np.arange(1, 17)"
        )
    if grid.size and grid.max() > mean_q.size - 1:
        raise ConfigError(
            f"average_budgets must be <= max_budget={mean_q.size - 1}, got {grid.max()}; "
            "pass more columns of marginal rewards or a smaller grid"
        )
    result: FloatArray = np.interp(grid, np.arange(mean_q.size, dtype=np.float64), mean_q)
    return result
