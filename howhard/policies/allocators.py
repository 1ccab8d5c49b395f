"""Exact compute allocation: split a budget across requests where marginal reward is largest.

Eq. 5 of the paper: choose ``b_i`` to maximise ``Σ_i Σ_{j≤b_i} Δ_ij`` subject to
``Σ_i b_i ≤ total_budget`` and ``min_budget ≤ b_i ≤ B_max``. With non-increasing rows the feasible
prefix sets form a matroid, so buying the largest ``Δ_ij`` first is exact. Instead of a heap, the
solvers here find the value of the last unit bought (the threshold) from a deterministic sample,
count each row's units above a bound by binary search (rows are sorted, so counts are prefix
lengths), and partition only the few entries near the threshold: ``O(n·log B_max)`` work after
one validation pass over the matrix.

:class:`OnlineAllocator` solves each batch exactly; :class:`OfflineAllocator` fits one budget per
score bin on held-out data and then serves requests one at a time from that table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.errors import CheckpointError, ConfigError
from howhard.marginals import geometric_marginal

__all__ = ["OfflineAllocator", "OnlineAllocator", "allocate", "allocate_success_prob"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: A row may increase by at most this much (times ``max(1, max |Δ|)``) and still count as
#: non-increasing: rounding in computed marginals produces such wobble. Within the tolerance rows
#: are replaced by their running minimum before solving, which changes no value by more than it.
MONOTONE_TOLERANCE = 1e-9

_SAMPLE_MIN = 4096
_SAMPLE_MAX = 65_536
_BAND_LIMIT = 65_536
_SAMPLE_SEED = 0x5EED
# Half-width of the sampled threshold bracket in standard deviations of the sample rank; a
# bracket that misses falls back to a wider exact search, so this only trades speed, never result.
_BRACKET_SIGMAS = 4.0
_CHUNK_ELEMENTS = 65_536
_SMALLEST_SUBNORMAL = 5e-324
# Relative distance within which an approximate count may misplace an entry (see _select).
_ROUNDING = 1e-9
_DEDUPLICATE_ABOVE = 4096


# --------------------------------------------------------------------------- validation helpers


def _check_int(name: str, value: Any, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(
            f"{name} must be an int >= {minimum}, got {value!r} ({type(value).__name__}); "
            f"pass a whole number of compute units, e.g. {name}=int(value)"
        )
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}; pass a value >= {minimum}")
    return int(value)


def _check_average(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ConfigError(
            f"{name} must be a number >= 0, got {value!r} ({type(value).__name__}); "
            f"pass e.g. {name}=4.0"
        )
    result = float(value)
    if not math.isfinite(result) or result < 0:
        raise ConfigError(f"{name} must be a finite number >= 0, got {value}; pass e.g. 4.0")
    return result


def _floor_total(average_budget: float, n: int) -> int:
    """``floor(average_budget · n)``, robust to ``2.3 * 10 == 22.999…`` style rounding."""
    return math.floor(average_budget * n + 1e-9)


def _first_bad_index(mask: npt.NDArray[np.bool_]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _float_array(
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


def _as_matrix(marginals: Any) -> FloatArray:
    """``marginals`` as a C-contiguous float64 ``(n, B)`` matrix (no copy when it already is)."""
    return _float_array(
        "marginals",
        marginals,
        "(n, max_budget)",
        ndim=2,
        numeric_fix="pass a numpy float array",
        shape_fix="pass one row of marginal rewards per request "
        "(reshape a single row with [None, :])",
    )


def _check_rows(matrix: FloatArray, first: int = 0) -> FloatArray:
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


def _check_budgets(n: int, max_budget: int, total_budget: Any, min_budget: Any) -> tuple[int, int]:
    total = _check_int("total_budget", total_budget)
    floor = _check_int("min_budget", min_budget)
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


# --------------------------------------------------------------------------- threshold selection

CountAbove = Callable[[tuple[float, ...], bool], list[IntArray]]
Values = Callable[[IntArray, IntArray], FloatArray]


def _select(
    n: int,
    width: int,
    remaining: int,
    count_above: CountAbove,
    values: Values,
    *,
    exact: bool = False,
) -> IntArray:
    """Units bought per row: the ``remaining`` largest positive entries, ties to lower rows.

    The entries are those of an implicit ``(n, width)`` matrix with non-increasing rows, seen
    through ``count_above(thresholds, exact)`` (per threshold ``t >= 0`` and row, how many
    entries are ``> t``) and ``values(rows, cols)``. The threshold (value of the last unit
    bought) is bracketed by sampling, the bracket narrowed by sampling inside it until few
    entries remain, and only those entries are read and partitioned.

    With ``exact=False`` a counter may misplace entries lying within rounding distance
    (``_ROUNDING``, relative) of a bracket end. That cannot change the result unless the final
    threshold itself lies that close to a bracket end, which is checked; then the selection is
    redone with exact counts.
    """
    zeros = np.zeros(n, dtype=np.int64)
    if n == 0 or width == 0 or remaining == 0:
        return zeros
    # Invariant below: count(hi) < remaining <= count(lo), so the threshold lies in (lo, hi].
    hi, lo = _bracket(values(*_sample_positions(n, width)), remaining, n * width)
    if math.isfinite(hi):
        cnt_hi, cnt_lo = count_above((hi, lo), exact)
    else:
        cnt_hi, (cnt_lo,) = zeros, count_above((lo,), exact)
    bought_hi, bought_lo = int(cnt_hi.sum()), int(cnt_lo.sum())
    if bought_hi >= remaining:  # the sample's upper bound was too low: search above it
        lo, cnt_lo, bought_lo = hi, cnt_hi, bought_hi
        hi, cnt_hi, bought_hi = math.inf, zeros, 0
    elif bought_lo < remaining and lo > 0.0:  # the lower bound was too high: search down to 0
        hi, cnt_hi, bought_hi = lo, cnt_lo, bought_lo
        lo, (cnt_lo,) = 0.0, count_above((0.0,), True)
        bought_lo = int(cnt_lo.sum())
    if bought_lo <= remaining and lo == 0.0:
        return cnt_lo  # every positive unit fits (counts at 0 are always exact)
    while bought_lo - bought_hi > _BAND_LIMIT:
        rows, cols = _sample_band(cnt_hi, cnt_lo, bought_lo - bought_hi)
        new_hi, new_lo = _bracket(
            values(rows, cols), remaining - bought_hi, bought_lo - bought_hi, hi
        )
        new_lo = max(new_lo, lo)
        if math.isfinite(new_hi):
            cnt_new_hi, cnt_new_lo = count_above((new_hi, new_lo), exact)
        else:
            cnt_new_hi, (cnt_new_lo,) = zeros, count_above((new_lo,), exact)
        progress = False
        if int(cnt_new_hi.sum()) < remaining and new_hi < hi:
            hi, cnt_hi, bought_hi, progress = new_hi, cnt_new_hi, int(cnt_new_hi.sum()), True
        if int(cnt_new_lo.sum()) >= remaining and new_lo > lo:
            lo, cnt_lo, bought_lo, progress = new_lo, cnt_new_lo, int(cnt_new_lo.sum()), True
        if not progress:  # e.g. one value tied across the whole band: finish on the band as is
            break
    rows, cols = _band_positions(cnt_hi, cnt_lo)
    band = values(rows, cols)
    rank = remaining - bought_hi  # the threshold is the rank-th largest entry of the band
    threshold = float(np.partition(band, band.size - rank)[band.size - rank])
    if not exact and not (lo * (1.0 + _ROUNDING) < threshold < hi * (1.0 - _ROUNDING)):
        return _select(n, width, remaining, count_above, values, exact=True)
    bought: IntArray = cnt_hi + np.bincount(rows[band > threshold], minlength=n)
    # Units worth exactly the threshold fill what is left, lower rows first. Tied entries of a
    # row are contiguous and the band lists rows in order, so that is the band's order.
    extra = remaining - int(bought.sum())
    tie_rows = rows[band == threshold][:extra]
    bought += np.bincount(tie_rows, minlength=n)
    return bought


def _sample_positions(n: int, width: int) -> tuple[IntArray, IntArray]:
    """A deterministic uniform sample of (row, column) positions of an ``(n, width)`` matrix."""
    rng = np.random.default_rng(_SAMPLE_SEED)
    if n * width <= _BAND_LIMIT:  # small problems: no sample, the band is the whole matrix
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    size = _sample_size(n * width)
    rows = rng.integers(0, n, size=size, dtype=np.int64)
    cols = rng.integers(0, width, size=size, dtype=np.int64)
    return rows, cols


def _band_positions(cnt_hi: IntArray, cnt_lo: IntArray) -> tuple[IntArray, IntArray]:
    """(row, column) of every entry of the band: row i's columns ``cnt_hi[i]..cnt_lo[i]-1``."""
    occupied = np.flatnonzero(cnt_lo != cnt_hi)  # usually far fewer rows than the batch
    lengths = cnt_lo[occupied] - cnt_hi[occupied]
    rows = np.repeat(occupied, lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    cols: IntArray = np.repeat(cnt_hi[occupied], lengths) + (
        np.arange(rows.size, dtype=np.int64) - starts
    )
    return rows, cols


def _sample_band(cnt_hi: IntArray, cnt_lo: IntArray, size: int) -> tuple[IntArray, IntArray]:
    """A deterministic uniform sample of the band's (row, column) positions (``size`` entries)."""
    occupied = np.flatnonzero(cnt_lo != cnt_hi)
    lengths = cnt_lo[occupied] - cnt_hi[occupied]
    rng = np.random.default_rng(_SAMPLE_SEED)
    flat = np.sort(rng.integers(0, size, size=_sample_size(size), dtype=np.int64))
    ends = np.cumsum(lengths)
    slot = np.searchsorted(ends, flat, side="right")
    rows = occupied[slot]
    cols: IntArray = cnt_hi[rows] + flat - (ends[slot] - lengths[slot])
    return rows, cols


def _sample_size(population: int) -> int:
    # The band left by a sample of s entries holds ~N/sqrt(s) entries: a larger sample for a huge
    # population saves a narrowing round (two O(n) counts); a small one keeps small calls fast.
    return int(min(_SAMPLE_MAX, max(_SAMPLE_MIN, 8.0 * math.sqrt(population))))


def _bracket(
    sample: FloatArray, rank: int, population: int, ceiling: float = math.inf
) -> tuple[float, float]:
    """Bounds ``lo < t <= hi`` on the ``rank``-th largest of ``population`` values, from a sample.

    ``(inf, 0)`` (search every positive entry) when there is no sample. ``hi`` never exceeds
    ``ceiling`` (a bound already known). A bracket that misses is detected by exact counts and
    widened, so the margin trades speed only, never correctness.
    """
    if sample.size == 0:
        return math.inf, 0.0
    size = sample.size
    ordered = -np.sort(-sample)  # descending
    fraction = min(1.0, rank / population)
    expected_rank = fraction * size
    margin = _BRACKET_SIGMAS * math.sqrt(size * fraction * (1.0 - fraction)) + 2.0
    upper_rank = math.floor(expected_rank - margin)
    lower_rank = math.ceil(expected_rank + margin)
    hi = min(float(ordered[upper_rank]) if upper_rank >= 0 else math.inf, ceiling)
    if hi <= 0.0:  # the sample says nearly every positive unit fits: search all of them
        return ceiling, 0.0
    lo = float(ordered[lower_rank]) if lower_rank < size else 0.0
    if lo >= hi:  # tied sample values: step below the tie so the bracket is not empty
        below = ordered[ordered < hi]
        lo = float(below[0]) if below.size else 0.0
    return hi, max(lo, 0.0)


def _matrix_counter(matrix: FloatArray, min_budget: int) -> tuple[CountAbove, Values]:
    n, max_budget = matrix.shape
    width = max_budget - min_budget
    flat = matrix.ravel()
    row_base = np.arange(n, dtype=np.int64) * max_budget + min_budget
    # The binary search below finds min(count, width - 1); rows whose last entry is also above
    # t are then settled with one more probe. When width is a power of two its steps never
    # probe past a row's end; otherwise probes are clamped to the row's last entry.
    first_step = 1 << ((width - 1).bit_length() - 1) if width > 1 else 0
    clamp = width & (width - 1) != 0
    row_last = row_base + (width - 1)

    def count_above(thresholds: tuple[float, ...], exact: bool) -> list[IntArray]:
        # Always exact. A row whose first entry is not above the lowest threshold counts 0 for
        # every threshold; when that holds for many rows (hopeless requests, say), only the
        # others are searched.
        live = np.flatnonzero(flat.take(row_base) > min(thresholds))
        if live.size > 0.8 * n:
            return list(_search(row_base, row_last, thresholds))
        counts = np.zeros((len(thresholds), n), dtype=np.int64)
        counts[:, live] = _search(row_base[live], row_last[live], thresholds)
        return list(counts)

    def _search(base: IntArray, ends: IntArray, thresholds: tuple[float, ...]) -> IntArray:
        # Branch-free binary search over the given rows and all thresholds at once: rows are
        # sorted, so a row's count above t is the length of its prefix above t. `last` holds
        # the flat index of each row's last entry known to be above t (base - 1 if none); each
        # step tries to move it `step` entries further.
        k, m = len(thresholds), base.size
        limit = np.repeat(np.asarray(thresholds, dtype=np.float64), m)
        last = np.tile(base - 1, k)
        ends = np.tile(ends, k)
        probe = np.empty_like(last)
        probed = np.empty(m * k, dtype=np.float64)
        above = np.empty(m * k, dtype=np.bool_)
        step = first_step
        while step:
            np.add(last, step, out=probe)
            if clamp:
                np.minimum(probe, ends, out=probe)
            flat.take(probe, out=probed)
            np.greater(probed, limit, out=above)
            np.add(last, step, out=last, where=above)
            step >>= 1
        np.minimum(last, ends, out=last)
        last -= ends  # now count - width
        flat.take(ends, out=probed)
        np.greater(probed, limit, out=above)
        above &= last == -1
        last += width
        last += above
        return last.reshape(k, m)

    def values(rows: IntArray, cols: IntArray) -> FloatArray:
        result: FloatArray = flat.take(row_base[rows] + cols)
        return result

    return count_above, values


# --------------------------------------------------------------------------- public solvers


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
    matrix = _as_matrix(marginals)
    n, max_budget = matrix.shape
    total, floor = _check_budgets(n, max_budget, total_budget, min_budget)
    matrix = _check_rows(matrix, floor)
    count_above, values = _matrix_counter(matrix, floor)
    # Matrix counts are exact, so _select never needs its second, exact pass.
    bought = _select(n, max_budget - floor, total - floor * n, count_above, values, exact=True)
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
    probs = _validate_probabilities(p)
    budget_cap = _check_int("max_budget", max_budget, minimum=1)
    n = probs.shape[0]
    total, floor = _check_budgets(n, budget_cap, total_budget, min_budget)
    count_above, values = _geometric_counter(probs, budget_cap, floor)
    bought = _select(n, budget_cap - floor, total - floor * n, count_above, values)
    if floor:
        bought += floor
    return bought


def _validate_probabilities(p: Any) -> FloatArray:
    probs = _float_array(
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


def _geometric_counter(
    probs: FloatArray, max_budget: int, min_budget: int
) -> tuple[CountAbove, Values]:
    width = max_budget - min_budget
    n = probs.shape[0]
    # Work in a few preallocated arrays: at a million rows, each fresh temporary costs more in
    # page faults than the arithmetic done in it.
    #
    # Row i's count above t is ceil(bound) with bound = offset + scale * log(t) (see count_one):
    # offset = -log(p)/log(1-p), scale = 1/log(1-p). Rows the formula cannot describe get
    # scale 0 and a fixed offset instead: p == 0 (never above t >= 0), p == 1 (one unit of
    # value 1, then zeros), and p so small that 1 - p rounds to 1 (constant rows, settled
    # explicitly in count_one).
    scale = np.subtract(1.0, probs)
    special = np.flatnonzero((scale == 1.0) | (scale == 0.0))
    special_p = probs[special]
    scale[special] = 0.5  # placeholder keeping the logarithms finite; overwritten below
    offset = np.maximum(probs, _SMALLEST_SUBNORMAL)
    np.log(offset, out=offset)
    np.log(scale, out=scale)
    np.divide(1.0, scale, out=scale)
    np.multiply(offset, scale, out=offset)
    np.negative(offset, out=offset)
    scale[special] = 0.0
    offset[special] = np.where(special_p == 1.0, 1.0, -1.0)
    constant_rows = special[(special_p > 0.0) & (np.subtract(1.0, special_p) == 1.0)]
    bound = np.empty(n, dtype=np.float64)
    # Only exact counts and subnormal thresholds need these; most calls never touch them.
    distance = np.empty(0, dtype=np.float64)
    near = np.empty(0, dtype=np.bool_)
    slack_cache: list[FloatArray] = []

    def slack() -> FloatArray:
        # How close to an integer the bound must be before rounding could flip a comparison:
        # a few ulps of the value, in exponent units via 1/|log(1-p)|; -1 marks rows never in
        # doubt. Only exact counts need it, so it is built on first use.
        if not slack_cache:
            margin = np.multiply(scale, -1e-12)
            margin += 1e-9 * (max_budget + 3.0)
            margin[special] = -1.0
            slack_cache.append(margin)
        return slack_cache[0]

    def value_at(rows: IntArray, exponents: IntArray) -> FloatArray:
        return geometric_marginal(probs[rows], exponents)

    def count_above(thresholds: tuple[float, ...], exact: bool) -> list[IntArray]:
        return [count_one(t, exact) for t in thresholds]

    def count_one(threshold: float, exact: bool) -> IntArray:
        # The number of leading exponents j >= 0 with p(1-p)^j > t is ceil(log(t/p) / log(1-p)),
        # clipped to the row. Rounding matters only where that bound is within `slack` of an
        # integer, or the threshold is subnormal; with `exact`, those rows are settled by exact
        # evaluation (otherwise they may be off by the entries within ~1e-12 relative of t).
        if threshold >= 1.0:  # no marginal reward exceeds p <= 1
            return np.zeros(n, dtype=np.int64)
        # Below the smallest subnormal, "> t" means "has not underflowed to 0".
        np.multiply(scale, math.log(max(threshold, _SMALLEST_SUBNORMAL)), out=bound)
        np.add(bound, offset, out=bound)
        nonlocal distance, near
        subnormal = threshold < 1e-280  # rounding is coarse there: check every row in range
        if (subnormal or exact) and near.size != n:
            distance = np.empty(n, dtype=np.float64)
            near = np.empty(n, dtype=np.bool_)
        if subnormal:
            np.less(bound, float(max_budget + 1), out=near)
        elif exact:
            np.rint(bound, out=distance)
            np.subtract(distance, bound, out=distance)
            np.abs(distance, out=distance)
            np.less_equal(distance, slack(), out=near)
        np.ceil(bound, out=bound)
        leading = bound.astype(np.int64)
        if subnormal or exact:
            unsure = np.flatnonzero(near)
            if unsure.size:
                guess = np.clip(leading[unsure], 0, max_budget)
                leading[unsure] = _exact_leading(unsure, guess, threshold)
        if constant_rows.size:
            leading[constant_rows] = np.where(probs[constant_rows] > threshold, max_budget, 0)
        if min_budget:
            leading -= min_budget
        np.maximum(leading, 0, out=leading)
        np.minimum(leading, width, out=leading)
        return leading

    def _exact_leading(rows: IntArray, guess: IntArray, threshold: float) -> IntArray:
        if rows.size > _DEDUPLICATE_ABOVE:
            # Many rows in doubt usually means tied probabilities: equal p, equal row, equal
            # answer, so settle each distinct probability once.
            _, first, inverse = np.unique(probs[rows], return_index=True, return_inverse=True)
            if first.size < rows.size // 2:
                return _exact_leading(rows[first], guess[first], threshold)[inverse]
        position = guess.copy()
        # Walk up while the entry at `position` is still above the threshold, then down while
        # the entry before it is not; each pass keeps only the rows that moved.
        active = np.flatnonzero(position < max_budget)
        while active.size:
            up = value_at(rows[active], position[active]) > threshold
            active = active[up]
            position[active] += 1
            active = active[position[active] < max_budget]
        active = np.flatnonzero(position > 0)
        while active.size:
            down = value_at(rows[active], position[active] - 1) <= threshold
            active = active[down]
            position[active] -= 1
            active = active[position[active] > 0]
        return position

    def values(rows: IntArray, cols: IntArray) -> FloatArray:
        return value_at(rows, cols + min_budget)

    return count_above, values


# --------------------------------------------------------------------------- allocator objects


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
        floor = _check_int("min_budget", self.min_budget)
        object.__setattr__(self, "min_budget", floor)
        if self.max_budget is not None:
            cap = _check_int("max_budget", self.max_budget, minimum=1)
            if floor > cap:
                raise ConfigError(
                    f"min_budget must be <= max_budget={cap}, got {floor}; lower min_budget"
                )
            object.__setattr__(self, "max_budget", cap)
        if self.average_budget is not None:
            average = _check_average("average_budget", self.average_budget)
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
            total_budget = _floor_total(self.average_budget, matrix.shape[0])
        floor = max(self.min_budget, _check_int("min_budget", min_budget or 0))
        return allocate(matrix[:, :cap], total_budget, min_budget=floor)


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
        matrix = _check_rows(_as_matrix(marginals))
        n, width = matrix.shape
        score = _validate_scores(scores)
        if score.shape[0] != n:
            raise ConfigError(
                f"scores and marginals must describe the same requests, got {score.shape[0]} "
                f"scores and {n} rows of marginals; pass one score per row"
            )
        if n == 0:
            raise ConfigError("fit needs at least one held-out request, got 0; pass a held-out set")
        bins = _check_int("n_bins", n_bins, minimum=1)
        average = _check_average("average_budget", average_budget)
        cap = width if max_budget is None else _check_int("max_budget", max_budget, minimum=1)
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
        table = _solve_bins(sizes, gains, _floor_total(average, n))
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
        score = _validate_scores(scores)
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
                max_budget=_check_int("max_budget", payload["max_budget"], minimum=1),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{str(path)!r} holds an invalid offline allocator: {exc}; refit and save it again"
            ) from exc


def _validate_scores(scores: Any) -> FloatArray:
    score = _float_array(
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
