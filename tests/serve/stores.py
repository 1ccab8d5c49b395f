"""A quota store the gateway's tests build through ``[ledger] factory = "tests.serve.stores:..."``.

A stand-in for a store several replicas share (a server-backed one): gateways built with the
same ``name`` get the same store, so two gateways in one test share quotas as two replicas on
one server would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from howhard.config import QuotaConfig
from howhard.ledger import Amount, Hold, InMemoryLedger, Ledger, Reservation, TenantSpend


class SharedStore(Ledger):
    """A stand-in for a store several replicas share: one in-memory ledger behind the port,
    opened and closed as a server-backed store would be."""

    stores: ClassVar[dict[str, SharedStore]] = {}
    """Stores by name: gateways built with the same name share one."""

    def __init__(self, quotas: Mapping[str, QuotaConfig] | None) -> None:
        self._inner = InMemoryLedger(quotas)
        self.opened = 0
        self.closed = 0

    async def __aenter__(self) -> SharedStore:
        self.opened += 1
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.closed += 1

    async def check_tenant(self, tenant: str) -> QuotaConfig | None:
        return await self._inner.check_tenant(tenant)

    async def reserve(
        self, tenant: str, hold: Hold, *, fallbacks: Sequence[Hold] = ()
    ) -> Reservation:
        return await self._inner.reserve(tenant, hold, fallbacks=fallbacks)

    async def settle(self, reservation: Reservation, actual: Amount) -> Amount:
        return await self._inner.settle(reservation, actual)

    async def refund(self, reservation: Reservation) -> None:
        await self._inner.refund(reservation)

    async def snapshot(self) -> Mapping[str, TenantSpend]:
        return await self._inner.snapshot()


def shared_store(*, quotas: Mapping[str, QuotaConfig] | None, name: str) -> SharedStore:
    """``ledger.factory``: the store called ``name``, created on first use."""
    if name not in SharedStore.stores:
        SharedStore.stores[name] = SharedStore(quotas)
    return SharedStore.stores[name]
