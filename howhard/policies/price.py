"""``StreamPrice``: the value of a unit below which a request does not get it.

The exact allocator spends a batch's whole total on it: with one request per batch it gives
that request ``floor(B + carry)`` units whatever its marginals, so at low traffic an adaptive
policy *is* uniform. A price fitted on the recent stream lets any batch, down to a single
request, bank the units worth less than the stream's going rate; the scheduler's carry rule
returns them to later batches, so the long-run average stays exact.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError
from howhard.policies.online import allocate

__all__ = ["StreamPrice"]

FloatArray = npt.NDArray[np.float64]


class StreamPrice:
    """Fits a unit price on the rows predicted for the last ``window`` batches, then allocates.

    The price ``η`` is set so that those rows (this batch's included) would spend
    ``average_budget + carry / horizon`` units each (``carry``: the units the scheduler banked,
    seen as ``total - B·n``); a batch buys, with the exact allocator, only units worth at least
    ``η`` and at most its total.
    """

    def __init__(self, *, window: int = 256, horizon: float = 64.0) -> None:
        if window < 1 or horizon <= 0:
            raise ConfigError(f"window must be >= 1 and horizon > 0, got {window}, {horizon}")
        self.window = window
        self.horizon = horizon
        self._rows: deque[FloatArray] = deque(maxlen=window)
        self.price = 0.0
        """The last price used."""

    def _fit(self, batch: FloatArray, average: float, carry: float, floor: int) -> float:
        rows = np.concatenate([*self._rows, batch])
        target = (average + max(carry, 0.0) / self.horizon) * len(rows)
        extra = round(target - floor * len(rows))  # units beyond the floor
        values = rows[:, floor:].ravel()
        if extra <= 0:
            return float("inf")
        if extra >= values.size:
            return 0.0
        return float(np.partition(values, values.size - extra)[values.size - extra])

    def allocate(
        self, marginals: FloatArray, total: int, *, average_budget: float, min_budget: int
    ) -> npt.NDArray[np.int64]:
        """Budgets ``(n,)`` for ``marginals (n, B_max)`` within ``total``, at the stream's price."""
        n = len(marginals)
        if self._rows and self._rows[-1].shape[1] != marginals.shape[1]:
            self._rows.clear()  # the bounds' max_budget changed: older rows price other units
        self.price = self._fit(marginals, average_budget, total - average_budget * n, min_budget)
        priced = marginals.copy()
        tail = priced[:, min_budget:]
        # Units not worth the price are worth nothing to the allocator: it leaves them unspent.
        priced[:, min_budget:] = np.where(tail >= self.price, tail, 0.0)
        budgets = allocate(priced, int(total), min_budget=min_budget)
        self._rows.append(marginals)
        return budgets
