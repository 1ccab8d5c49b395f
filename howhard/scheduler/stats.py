"""What a scheduler reports about itself: its lifecycle state and a snapshot for dashboards."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from howhard.ledger import TenantSpend

__all__ = ["SchedulerState", "SchedulerStats"]


class SchedulerState(enum.Enum):
    """Lifecycle: CREATED → RUNNING (inside ``async with``) → CLOSING → CLOSED."""

    CREATED = "created"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SchedulerStats:
    """A snapshot for dashboards: queue, in-flight work, outcomes and per-tenant spend."""

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
    spend: Mapping[str, TenantSpend]

    @property
    def resolved(self) -> int:
        """Requests that reached their single outcome (completed + failed + cancelled)."""
        return self.completed + self.failed + self.cancelled
