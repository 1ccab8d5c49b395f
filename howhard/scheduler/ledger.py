"""Moved: the ledger is now the :mod:`howhard.ledger` package (rules, storage port, stores).

This module keeps the old import path working: ``from howhard.scheduler.ledger import ...``.
"""

from howhard.ledger import InMemoryLedger, Ledger, Reservation, TenantSpend

__all__ = ["InMemoryLedger", "Ledger", "Reservation", "TenantSpend"]
