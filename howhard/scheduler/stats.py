"""What a scheduler reports about itself: its lifecycle state and a snapshot for dashboards.

Per-tenant spend is the ledger's to report (``await scheduler.spend()``): the ledger may be a
store shared by several schedulers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["SchedulerState", "SchedulerStats"]


class SchedulerState(enum.Enum):
    """Lifecycle: CREATED → RUNNING (inside ``async with``) → CLOSING → CLOSED."""

    CREATED = "created"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SchedulerStats:
    """A snapshot for dashboards: queue, in-flight work and outcomes of one scheduler."""

    state: SchedulerState
    queued: int
    """Requests waiting in the bounded queue."""
    waiting_submitters: int
    """Callers blocked in ``submit`` because the queue is full (backpressure)."""
    in_flight: int
    """Requests currently reserved and running on the backend."""
    submitted: int
    completed: int
    failed: int
    cancelled: int
    batches: int
    carry: float
    """Units carried to the next batch (see the carry rule)."""
    usage_violations: int = 0
    """Backend replies whose usage figures were invalid (charged their worst case) or over
    their bounds (bounded): each is also a ``backend.usage_bounded`` event or a failure."""

    @property
    def resolved(self) -> int:
        """Requests that reached their single outcome (completed + failed + cancelled)."""
        return self.completed + self.failed + self.cancelled
