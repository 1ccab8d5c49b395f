"""Micro-batching: gather queued requests into batches, and the budget carry rule.

A batch closes when it holds ``max_batch_size`` requests or ``max_wait_s`` after its first
request was submitted (``time.monotonic``), whichever comes first. The wait is aimed
``TIMER_SLACK_S`` early (at most half of ``max_wait_s``): event loops time their waits in whole
milliseconds rounded up, so a timer due mid-millisecond fires up to 1 ms late whenever something
else woke the loop shortly before; aiming half a millisecond early centres the close on the
deadline (within about +-0.5 ms) instead of always after it.

**Carry rule.** Batch ``t`` with ``n_t`` requests gets ``T_t = floor(B * n_t + c_t)`` units, where
``B`` is the average budget and ``c_t`` the carry; after the policy allocates ``s_t <= T_t`` units,
``c_{t+1} = min(B * n_t + c_t - s_t, L)``. Arithmetic is exact (fractions), so
``sum(s) = B * sum(n) - c`` with ``0 <= c <= L`` at all times: cumulative spend never exceeds
``B`` per request, and a policy that spends what it is given trails it by less than one unit
(``c < 1``), so the long-run average is exactly ``B`` even for batches of one. ``L`` (default one
full batch's worth, ``B * max_batch_size``) bounds how much an under-spending policy can bank and
later burst.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from fractions import Fraction
from typing import TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

__all__ = ["TIMER_SLACK_S", "BudgetCarry", "close_time", "next_batch"]

T = TypeVar("T")

TIMER_SLACK_S = 0.0005
"""How much earlier than ``max_wait_s`` a batch aims to close: half of epoll's 1 ms timer tick."""


def _exact(value: float) -> Fraction:
    # repr() gives the shortest decimal that round-trips, so 0.3 becomes exactly 3/10.
    return Fraction(repr(float(value)))


class BudgetCarry:
    """Turns an average budget per request into exact integer batch totals (the carry rule)."""

    __slots__ = ("_average", "_limit", "carry")

    def __init__(self, average_budget: float, limit: float) -> None:
        self._average = _exact(average_budget)
        self._limit = _exact(limit)
        self.carry = Fraction(0)
        """Units earned by earlier batches but not allocated (``0 <= carry <= limit``)."""

    def total(self, n: int) -> int:
        """The whole units batch of ``n`` requests may spend: ``floor(B * n + carry)``."""
        return math.floor(self._average * n + self.carry)

    def spend(self, n: int, spent: int) -> None:
        """Record that a batch of ``n`` requests was allocated ``spent <= total(n)`` units."""
        remainder = self._average * n + self.carry - spent
        if remainder < 0:
            raise ValueError(f"spent {spent} exceeds the batch total {self.total(n)}")
        self.carry = min(remainder, self._limit)

    def give_back(self, units: int) -> None:
        """Return ``units`` a request was allocated but did not use (it stopped early) to the
        carry, so later batches can spend them; still bounded by the carry limit."""
        if units < 0:
            raise ValueError(f"units must be >= 0, got {units}")
        self.carry = min(self.carry + units, self._limit)


def close_time(opened: float, max_wait_s: float) -> float:
    """When a batch opened at ``opened`` aims to close: ``max_wait_s`` later, less the slack."""
    return opened + max_wait_s - min(TIMER_SLACK_S, max_wait_s / 2)


async def next_batch(
    receive: MemoryObjectReceiveStream[T],
    *,
    max_batch_size: int,
    max_wait_s: float,
    arrival: Callable[[T], float] | None = None,
    into: list[T] | None = None,
) -> list[T] | None:
    """The next batch from ``receive``, or ``None`` once the stream has ended and is empty.

    The batch stays open ``max_wait_s`` after its first item *arrived* (``arrival(item)``, in
    ``time.monotonic()`` seconds; default: when the batcher received it), so time the item
    spent queued behind a busy batcher counts toward its wait. It aims to close
    ``min(TIMER_SLACK_S, max_wait_s / 2)`` before that (see the module docstring).

    Items are appended to ``into`` (an empty list) as they arrive, so a caller cancelled while
    the batch is open still holds, and can fail, the items taken off the stream.
    """
    batch: list[T] = [] if into is None else into
    try:
        first = await receive.receive()
    except anyio.EndOfStream:
        return None
    batch.append(first)
    deadline = close_time(arrival(first) if arrival is not None else time.monotonic(), max_wait_s)
    while len(batch) < max_batch_size:
        try:
            batch.append(receive.receive_nowait())
            continue
        except anyio.WouldBlock:
            pass
        except anyio.EndOfStream:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        with anyio.move_on_after(remaining):
            try:
                batch.append(await receive.receive())
            except anyio.EndOfStream:
                break
            continue
        break
    return batch
