"""The scheduler runtime: micro-batching, budget allocation, dispatch and the quota ledger."""

from howhard.scheduler.batcher import BudgetCarry
from howhard.scheduler.context import CallContext
from howhard.scheduler.ledger import InMemoryLedger, Ledger, Reservation, TenantSpend
from howhard.scheduler.retry import backoff_delay
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
