"""The selection engine behind the exact allocators: which units to buy, without a heap.

The allocators buy the ``remaining`` largest positive entries of an implicit ``(n, width)``
matrix with non-increasing rows (ties to lower rows). Instead of a heap, :func:`select` finds
the value of the last unit bought (the threshold) from a deterministic sample, counts each row's
units above a bound by binary search (rows are sorted, so counts are prefix lengths), and
partitions only the few entries near the threshold: ``O(n·log B_max)`` work. Two counters feed
it: :func:`matrix_counter` over an explicit matrix, :func:`geometric_counter` over success
probabilities (closed form, no matrix).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from howhard.marginals import geometric_marginal

__all__ = ["CountAbove", "Values", "geometric_counter", "matrix_counter", "select"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_SAMPLE_MIN = 4096
_SAMPLE_MAX = 65_536
_BAND_LIMIT = 65_536
_SAMPLE_SEED = 0x5EED
# Half-width of the sampled threshold bracket in standard deviations of the sample rank; a
# bracket that misses falls back to a wider exact search, so this only trades speed, never result.
_BRACKET_SIGMAS = 4.0
_SMALLEST_SUBNORMAL = 5e-324
# Relative distance within which an approximate count may misplace an entry (see select).
_ROUNDING = 1e-9
_DEDUPLICATE_ABOVE = 4096

CountAbove = Callable[[tuple[float, ...], bool], list[IntArray]]
Values = Callable[[IntArray, IntArray], FloatArray]


def select(
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
        return select(n, width, remaining, count_above, values, exact=True)
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


def matrix_counter(matrix: FloatArray, min_budget: int) -> tuple[CountAbove, Values]:
    """Counts above thresholds and entry values of an explicit ``(n, B)`` matrix, for ``select``.

    Columns before ``min_budget`` are bought anyway and left out (rows are sorted, so counts are
    found by binary search); counts are exact.
    """
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


def geometric_counter(
    probs: FloatArray, max_budget: int, min_budget: int
) -> tuple[CountAbove, Values]:
    """Counts and values of the implicit rows ``p·(1-p)^j``, for ``select``, without a matrix.

    A row's count above a threshold has a closed form (a logarithm); entries within rounding
    distance of the threshold are settled exactly, so ties match the matrix path.
    """
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
