"""The scheduler runtime: micro-batching, budget allocation, dispatch and quota accounting.

The quota store lives in :mod:`howhard.ledger`; ``InMemoryLedger``, ``Ledger``,
``Reservation`` and ``TenantSpend`` are re-exported here, where they used to live.
"""

from howhard.ledger import InMemoryLedger, Ledger, Reservation, TenantSpend
from howhard.procedures.caller import CallContext
from howhard.procedures.retry import backoff_delay
from howhard.scheduler.batcher import BudgetCarry
from howhard.scheduler.scheduler import Scheduler, SchedulerState, SchedulerStats

__all__ = [
    "BudgetCarry",
    "CallContext",
    "InMemoryLedger",
    "Ledger",
    "Reservation",
    "Scheduler",
    "SchedulerState",
    "SchedulerStats",
    "TenantSpend",
    "backoff_delay",
]
