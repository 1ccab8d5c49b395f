"""howhard.ledger: per-tenant quotas on units, tokens and money, reserved before dispatch.

Every request holds its *worst case* before any backend call (priced by the scheduler's cost
model), then settles its actual usage, never more than was held, or is refunded if it fails or
is cancelled. Three parts (``docs/architecture.md``):

- :mod:`.rules`: the quota rules, pure and synchronous (fits, degrade, window, pricing; money
  in integer micro-units);
- :mod:`.store`: the async storage port (:class:`Ledger`) every store implements atomically;
- :mod:`.memory`: :class:`InMemoryLedger`, the built-in store for one process;
- :mod:`.redis`: :class:`RedisLedger`, quotas shared by many processes on a Valkey/Redis
  server (leases, the server's clock, fail closed; its Lua is in :mod:`.scripts`).

A new store (e.g. on a shared server) implements :class:`Ledger` and passes the conformance
suite :class:`howhard.testing.ledger.LedgerContract` unchanged.
"""

from howhard.ledger.memory import InMemoryLedger
from howhard.ledger.redis import LeaseAudit, RedisLedger
from howhard.ledger.rules import Amount, Hold
from howhard.ledger.store import Ledger, Reservation, TenantSpend

__all__ = [
    "Amount",
    "Hold",
    "InMemoryLedger",
    "LeaseAudit",
    "Ledger",
    "RedisLedger",
    "Reservation",
    "TenantSpend",
]
