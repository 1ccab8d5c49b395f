"""The in-memory quota store: exact, lock-protected, for one process.

It applies :mod:`howhard.ledger.rules` under a lock, so every check-and-hold is atomic even when
schedulers on several threads share it. Spend lives in this process only: replicas that must
share a tenant's quota need a shared store implementing the same port
(:class:`howhard.ledger.Ledger`).
"""

from __future__ import annotations

import itertools
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from howhard.config import Price, QuotaConfig
from howhard.errors import QuotaExceeded, UsageError
from howhard.ledger.rules import (
    Amount,
    Hold,
    QuotaTable,
    charge,
    choose,
    in_window,
    over_quota_message,
)
from howhard.ledger.store import Ledger, Reservation, TenantSpend

__all__ = ["InMemoryLedger"]


class _Tally:
    """Mutable running sums of amounts (cheaper than a new ``Amount`` on every update)."""

    __slots__ = ("completion", "cost", "prompt", "units")

    def __init__(self) -> None:
        self.units = self.prompt = self.completion = self.cost = 0

    def add(self, amount: Amount, sign: int = 1) -> None:
        self.units += sign * amount.units
        self.prompt += sign * amount.prompt_tokens
        self.completion += sign * amount.completion_tokens
        self.cost += sign * amount.cost_micros

    def amount(self) -> Amount:
        return Amount(self.units, self.prompt, self.completion, self.cost)


@dataclass(slots=True)
class _Account:
    quota: QuotaConfig | None
    settled: _Tally = field(default_factory=_Tally)
    window: _Tally = field(default_factory=_Tally)
    reserved: _Tally = field(default_factory=_Tally)
    events: deque[tuple[float, Amount]] = field(default_factory=deque)
    open: int = 0
    rejected: int = 0
    degraded: int = 0

    def held(self) -> Amount:
        """Settled usage still in the window plus open holds: what a new hold adds to."""
        window, reserved = self.window, self.reserved
        return Amount(
            window.units + reserved.units,
            window.prompt + reserved.prompt,
            window.completion + reserved.completion,
            window.cost + reserved.cost,
        )


class InMemoryLedger(Ledger):
    """A process-local ledger with sliding-window quotas.

    ``quotas`` maps tenant → ``QuotaConfig``; tenants not listed use ``default_quota``. With no
    quotas at all every tenant is unlimited (spend is still tracked); with quotas but no default,
    an unknown tenant raises ``UnknownTenant``. ``clock`` (seconds, monotonic) times the windows.
    """

    def __init__(
        self,
        quotas: Mapping[str, QuotaConfig] | None = None,
        *,
        default_quota: QuotaConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        prices: Mapping[str, Price] | None = None,
    ) -> None:
        self._table = QuotaTable(quotas, default_quota)
        if prices is not None:
            warnings.warn(
                "InMemoryLedger(prices=...) is deprecated: prices belong to the scheduler's "
                "cost model; pass Scheduler(prices=...)",
                DeprecationWarning,
                stacklevel=2,
            )
        self.prices: Mapping[str, Price] = dict(prices or {})
        """Deprecated: the price table a ``Scheduler`` without ``prices=`` falls back to."""
        self._clock = clock
        # A threading lock (not an anyio one): nothing awaits inside the critical sections, and
        # this keeps the books exact when schedulers on several threads share one store.
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}
        self._open: dict[str, Reservation] = {}
        self._ids = itertools.count(1)

    def _quota(self, tenant: str) -> QuotaConfig | None:
        return self._table.lookup(tenant)

    async def check_tenant(self, tenant: str) -> QuotaConfig | None:
        """The quota in force for ``tenant``; ``UnknownTenant`` when it has none and no default."""
        return self._quota(tenant)

    def _account(self, tenant: str) -> _Account:
        account = self._accounts.get(tenant)
        if account is None:
            account = self._accounts[tenant] = _Account(self._quota(tenant))
        return account

    def _expire(self, account: _Account, now: float) -> None:
        window_s = account.quota.window_s if account.quota is not None else None
        events = account.events
        while events and not in_window(events[0][0], now, window_s):
            account.window.add(events.popleft()[1], -1)

    async def reserve(
        self, tenant: str, hold: Hold, *, fallbacks: Sequence[Hold] = ()
    ) -> Reservation:
        """Hold the worst case of ``hold`` (or, degrading, the largest fallback that fits)."""
        with self._lock:
            account = self._account(tenant)
            self._expire(account, self._clock())
            granted, broken = choose(account.quota, account.held(), hold, fallbacks)
            if granted is None:
                account.rejected += 1
                raise QuotaExceeded(
                    over_quota_message(tenant, hold.budget, broken or "?"), tenant=tenant
                )
            if granted is not hold:
                account.degraded += 1
            reservation = Reservation(
                str(next(self._ids)), tenant, granted.budget, hold.budget, granted.amount
            )
            account.reserved.add(granted.amount)
            account.open += 1
            self._open[reservation.id] = reservation
        return reservation

    def _close(self, reservation: Reservation) -> _Account:
        if self._open.pop(reservation.id, None) is None:
            raise UsageError(
                f"reservation {reservation.id} was already settled or refunded; "
                "settle or refund each reservation exactly once"
            )
        account = self._accounts[reservation.tenant]
        account.reserved.add(reservation.amount, -1)
        account.open -= 1
        return account

    async def settle(self, reservation: Reservation, actual: Amount) -> Amount:
        """Release the hold and charge ``actual``, capped at the hold; returns the charge."""
        charged = charge(reservation.amount, actual)
        with self._lock:
            account = self._close(reservation)
            account.settled.add(charged)
            account.window.add(charged)
            if account.quota is not None and account.quota.window_s is not None:
                account.events.append((self._clock(), charged))
        return charged

    async def refund(self, reservation: Reservation) -> None:
        """Release the hold without charging."""
        with self._lock:
            self._close(reservation)

    async def snapshot(self) -> dict[str, TenantSpend]:
        """Per-tenant spend (settled, in window, reserved) and rejection counts."""
        return self.snapshot_nowait()

    def snapshot_nowait(self) -> dict[str, TenantSpend]:
        """:meth:`snapshot`, synchronously: this store is in memory, so reading never waits.

        For synchronous readers that own an in-memory store (a metrics scrape); code written
        against the :class:`~howhard.ledger.Ledger` port uses the async ``snapshot``.
        """
        with self._lock:
            now = self._clock()
            out = {}
            for tenant, account in self._accounts.items():
                self._expire(account, now)
                out[tenant] = TenantSpend(
                    settled=account.settled.amount().usage(),
                    window=account.window.amount().usage(),
                    reserved=account.reserved.amount().usage(),
                    open_reservations=account.open,
                    rejected=account.rejected,
                    degraded=account.degraded,
                    quota=account.quota,
                )
            return out
