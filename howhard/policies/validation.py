"""Input checks shared by the allocators: budgets, probabilities, scores and marginal rows.

Every public allocator entry point validates through these, so a bad input gets the same
``ConfigError`` (a ``ValueError``) naming the parameter, the value and the fix wherever it
enters. :func:`check_rows` is also the one pass over a marginal matrix that proves it finite and
non-increasing (the solvers' precondition).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError

__all__ = [
    "MONOTONE_TOLERANCE",
    "as_matrix",
    "check_average",
    "check_int",
    "check_rows",
    "check_totals",
    "float_array",
    "floor_total",
    "validate_probabilities",
    "validate_scores",
]

FloatArray = npt.NDArray[np.float64]

#: A row may increase by at most this much (times ``max(1, max |Δ|)``) and still count as
#: non-increasing: rounding in computed marginals produces such wobble. Within the tolerance rows
#: are replaced by their running minimum before solving, which changes no value by more than it.
MONOTONE_TOLERANCE = 1e-9

_CHUNK_ELEMENTS = 65_536


def check_int(name: str, value: Any, *, minimum: int = 0) -> int:
    """``value`` as an int ``>= minimum``, or a ``ConfigError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(
            f"{name} must be an int >= {minimum}, got {value!r} ({type(value).__name__}); "
            f"pass a whole number of compute units, e.g. {name}=int(value)"
        )
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}; pass a value >= {minimum}")
    return int(value)


def check_average(name: str, value: Any) -> float:
    """``value`` as a finite float ``>= 0``, or a ``ConfigError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ConfigError(
            f"{name} must be a number >= 0, got {value!r} ({type(value).__name__}); "
            f"pass e.g. {name}=4.0"
        )
    result = float(value)
    if not math.isfinite(result) or result < 0:
        raise ConfigError(f"{name} must be a finite number >= 0, got {value}; pass e.g. 4.0")
    return result


def floor_total(average_budget: float, n: int) -> int:
    """``floor(average_budget · n)``, robust to ``2.3 * 10 == 22.999…`` style rounding."""
    return math.floor(average_budget * n + 1e-9)


def _first_bad_index(mask: npt.NDArray[np.bool_]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def float_array(
    name: str,
    value: Any,
    shape: str,
    *,
    ndim: int,
    numeric_fix: str,
    shape_fix: str,
    contiguous: bool = True,
) -> FloatArray:
    """``value`` as a float64 array with ``ndim`` dimensions, or a ``ConfigError`` naming ``name``.

    ``shape`` is the documented shape for messages (``"(n,)"``); the ``*_fix`` texts tell the
    caller what to pass instead. ``contiguous`` converts with ``np.ascontiguousarray`` (C order,
    no copy when already so; a scalar becomes shape ``(1,)``), else with ``np.asarray``.
    """
    convert = np.ascontiguousarray if contiguous else np.asarray
    try:
        array = convert(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{name} must be a numeric array of shape {shape}, got {type(value).__name__}; "
            f"{numeric_fix}"
        ) from exc
    if array.ndim != ndim:
        raise ConfigError(f"{name} must have shape {shape}, got shape {array.shape}; {shape_fix}")
    return array


def as_matrix(marginals: Any) -> FloatArray:
    """``marginals`` as a C-contiguous float64 ``(n, B)`` matrix (no copy when it already is)."""
    return float_array(
        "marginals",
        marginals,
        "(n, max_budget)",
        ndim=2,
        numeric_fix="pass a numpy float array",
        shape_fix="pass one row of marginal rewards per request "
        "(reshape a single row with [None, :])",
    )


def check_rows(matrix: FloatArray, first: int = 0) -> FloatArray:
    """Check every entry is finite and rows are non-increasing from column ``first`` on.

    Columns before ``first`` are bought unconditionally (``min_budget``), so only their
    finiteness matters. Returns the matrix itself, or, when rows rise by no more than the
    rounding tolerance, a copy whose rows from ``first`` on are replaced by their running minimum.
    """
    n, width = matrix.shape
    if matrix.size == 0:
        return matrix
    region = matrix[:, first:]
    suspect = not np.isfinite(matrix[:, :first]).all()
    region_width = region.shape[1]
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // width)
    verdict = np.empty(rows_per_chunk * width, dtype=np.bool_)
    # One chunked pass (the temporary stays in cache) proves the rows non-increasing; a NaN fails
    # the comparison too. Comparing each chunk as one flat run (fast contiguous loop) also pairs
    # a row's last entry with the next row's first; those verdicts are overwritten with True.
    # Sorted rows then hold their extremes in their first and last columns, so checking those
    # two columns proves every entry finite. Anything odd takes the slow path.
    for start in range(0, n if region_width > 1 and not suspect else 0, rows_per_chunk):
        block = region[start : start + rows_per_chunk]
        if first == 0:
            run = block.ravel()
            out = verdict[: run.size - 1]
            np.less_equal(run[1:], run[:-1], out=out)
            out[width - 1 :: width] = True
            ok = bool(out.all())
        else:
            ok = bool(np.less_equal(block[:, 1:], block[:, :-1]).all())
        if not ok:
            suspect = True
            break
    if region.shape[1] and not suspect:
        suspect = not (np.isfinite(region[:, 0]).all() and np.isfinite(region[:, -1]).all())
    if not suspect:
        return matrix
    bad = ~np.isfinite(matrix)
    if bad.any():
        index = _first_bad_index(bad)
        raise ConfigError(
            f"marginals must be finite, got {matrix[index]} at (row, column) {index}; "
            "replace NaN/inf predictions (e.g. np.nan_to_num) before allocating"
        )
    rises = np.diff(region, axis=1)
    tolerance = MONOTONE_TOLERANCE * max(1.0, float(np.abs(region).max()))
    too_much = rises > tolerance
    if too_much.any():
        row, column = _first_bad_index(too_much)
        column += first
        raise ConfigError(
            f"marginals rows must be non-increasing (diminishing returns), but row {row} rises "
            f"from {matrix[row, column]} to {matrix[row, column + 1]} at columns "
            f"{column}->{column + 1} (tolerance {tolerance:.3g}); pass marginal rewards "
            "Δ_j = q(j) - q(j-1), not cumulative rewards q(j), or enforce diminishing returns "
            "with np.minimum.accumulate(marginals, axis=1)"
        )
    flattened = matrix.copy()
    np.minimum.accumulate(region, axis=1, out=flattened[:, first:])
    return flattened


def check_totals(n: int, max_budget: int, total_budget: Any, min_budget: Any) -> tuple[int, int]:
    """``(total_budget, min_budget)`` checked against each other for ``n`` requests."""
    total = check_int("total_budget", total_budget)
    floor = check_int("min_budget", min_budget)
    if floor > max_budget:
        raise ConfigError(
            f"min_budget must be <= max_budget={max_budget}, got {floor}; lower min_budget or "
            "predict more columns of marginal rewards"
        )
    if floor * n > total:
        raise ConfigError(
            f"total_budget={total} cannot give min_budget={floor} to each of {n} requests "
            f"(needs {floor * n}); raise total_budget to >= {floor * n} or lower min_budget"
        )
    return total, floor


def validate_probabilities(p: Any) -> FloatArray:
    """``p`` as a 1-D float array of probabilities in ``[0, 1]``, or a ``ConfigError``."""
    probs = float_array(
        "p",
        p,
        "(n,)",
        ndim=1,
        numeric_fix="pass success probabilities as a numpy float array",
        shape_fix="pass one probability per request",
    )
    # min/max propagate NaN, so two reductions prove every entry lies in [0, 1].
    if probs.size and not (probs.min() >= 0.0 and probs.max() <= 1.0):
        index = int(np.argmax(~((probs >= 0.0) & (probs <= 1.0))))
        raise ConfigError(
            f"p must lie in [0, 1], got {probs[index]} at index {index}; "
            "pass probabilities (clip or apply a sigmoid to raw scores)"
        )
    return probs


def validate_scores(scores: Any) -> FloatArray:
    """``scores`` as a 1-D array of finite floats, or a ``ConfigError``."""
    score = float_array(
        "scores",
        scores,
        "(n,)",
        ndim=1,
        numeric_fix="pass one float score per request",
        shape_fix="pass one score per request",
        contiguous=False,
    )
    if not np.isfinite(score).all():
        index = int(np.argmax(~np.isfinite(score)))
        raise ConfigError(
            f"scores must be finite, got {score[index]} at index {index}; "
            "repair NaN/inf predictions first"
        )
    return score
