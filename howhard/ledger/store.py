"""The ledger's storage port: the small async interface every quota store implements.

The scheduler prices a request's worst case itself (its cost model) and hands the store plain
numbers, so a store needs no callbacks, no price table and no knowledge of procedures. Each
operation is **atomic**: a store checks and holds in one step (in memory under a lock; on a
shared server in one script), so concurrent requests, from any number of processes, can never
push a tenant past its quota. The rules a store applies are :mod:`howhard.ledger.rules`; the
conformance suite :class:`howhard.testing.ledger.LedgerContract` checks a store keeps them.

What a store promises:

- ``check_tenant(tenant)``: the tenant's quota (``None`` = unlimited), or ``UnknownTenant``.
- ``reserve(tenant, hold, fallbacks=())``: hold ``hold.amount``, or, for a tenant whose quota
  degrades, the largest of ``fallbacks`` that fits; else ``QuotaExceeded``, changing nothing.
- ``settle(reservation, actual)``: release the hold and charge ``actual`` capped at it; returns
  what was charged. ``refund(reservation)``: release without charging. The scheduler validates
  and bounds a backend's figures before settling, so every field of ``actual`` is an
  ``int >= 0``; :func:`howhard.ledger.rules.charge` refuses anything else (``UsageError``, the
  books unchanged). A request that failed after generating settles what it generated; only a
  request that generated nothing is refunded.
- A reservation is closed at most once. Closing one that is not open (already closed, or a
  lease a shared store let expire) never changes the books; a store may say so with
  ``UsageError`` (the in-memory store does) or ignore it (idempotent, as a store with expiring
  leases must). A store with leases renews its own open holds while they are open.
- ``snapshot()``: per-tenant spend, for ``Scheduler.spend()`` and dashboards.

See ``docs/architecture.md`` for adding a store.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from howhard.config import QuotaConfig
from howhard.ledger.rules import Amount, Hold
from howhard.types import Usage

__all__ = ["Ledger", "Reservation", "TenantSpend"]


@dataclass(frozen=True, slots=True)
class Reservation:
    """A hold on a tenant's quota, returned by ``reserve`` and passed to ``settle``/``refund``."""

    id: str
    """The store's handle for this hold (a lease id for a shared store)."""
    tenant: str
    budget: int
    """Units granted (``< requested`` when the tenant's quota degraded the request)."""
    requested: int
    """Units the policy asked for."""
    amount: Amount
    """The worst case held against the quota."""


@dataclass(frozen=True, slots=True)
class TenantSpend:
    """A snapshot of one tenant's account."""

    settled: Usage
    """Everything settled since the store was created (never expires)."""
    window: Usage
    """Settled usage that still counts against the quota's window."""
    reserved: Usage
    """Worst-case usage held by reservations not yet settled or refunded."""
    open_reservations: int
    rejected: int
    degraded: int
    quota: QuotaConfig | None


class Ledger(abc.ABC):
    """A quota store: what the scheduler needs to reserve, settle and refund atomically."""

    @abc.abstractmethod
    async def check_tenant(self, tenant: str) -> QuotaConfig | None:
        """``tenant``'s quota (``None``: unlimited), or ``UnknownTenant`` if it can't be served.

        Called at submit, so an unknown tenant fails before anything is queued or held.
        """

    @abc.abstractmethod
    async def reserve(
        self, tenant: str, hold: Hold, *, fallbacks: Sequence[Hold] = ()
    ) -> Reservation:
        """Hold ``hold.amount`` for ``tenant`` atomically, or raise ``QuotaExceeded``.

        ``fallbacks`` are smaller budgets' holds in increasing order; a tenant whose quota says
        ``degrade`` is granted the largest that fits when ``hold`` does not.
        """

    @abc.abstractmethod
    async def settle(self, reservation: Reservation, actual: Amount) -> Amount:
        """Release the hold and charge ``actual``, never more than was held; returns the charge."""

    @abc.abstractmethod
    async def refund(self, reservation: Reservation) -> None:
        """Release the hold without charging anything (failure or cancellation)."""

    @abc.abstractmethod
    async def snapshot(self) -> Mapping[str, TenantSpend]:
        """Per-tenant spend: settled, in the window, held, and rejection counts."""
