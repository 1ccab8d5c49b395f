"""The ledger: per-tenant quotas on units, tokens and cost, reserved before dispatch.

Every request reserves its *worst case* (its budget in units; prompt bound plus
``samples * max_tokens`` tokens; the cost of those tokens, plus each call's ``timeout_s`` at the
model's per-second price) before any backend call, then settles its actual usage or is refunded
if it fails or is cancelled. Because the check and the reservation happen in one critical
section, concurrent submitters can never push a tenant's spend (settled in the window +
outstanding reservations) past its quota. A request without a timeout has no bound on its backend
time, so the scheduler refuses it at submit when its tenant has a cost quota and a planned model
is priced per second (see ``Ledger.has_cost_quota``).

``Ledger`` is the abstract interface the scheduler talks to (async, so a Redis implementation with
a Lua check-and-reserve script can satisfy it later); ``InMemoryLedger`` is the built-in one.
"""

from __future__ import annotations

import abc
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from howhard.config import Price, QuotaConfig
from howhard.errors import ConfigError, QuotaExceeded, UnknownTenant, UsageError
from howhard.scheduler.events import get_logger
from howhard.types import Usage

__all__ = ["InMemoryLedger", "Ledger", "Reservation", "TenantSpend"]

_FREE = Price()
# Float sums of costs drift in the last bits; a quota is "fitting" within this absolute slack.
_COST_EPS = 1e-12


@dataclass(frozen=True, slots=True)
class Reservation:
    """A hold on a tenant's quota, returned by ``reserve`` and passed to ``settle``/``refund``."""

    id: int
    tenant: str
    budget: int
    """Units granted (``< requested`` when the tenant's quota degraded the request)."""
    requested: int
    """Units the policy asked for."""
    amount: Usage
    """The worst-case usage held against the quota."""


@dataclass(frozen=True, slots=True)
class TenantSpend:
    """A snapshot of one tenant's account."""

    settled: Usage
    """Everything settled since the ledger was created (never expires)."""
    window: Usage
    """Settled usage that still counts against the quota's window."""
    reserved: Usage
    """Worst-case usage held by reservations not yet settled or refunded."""
    open_reservations: int
    rejected: int
    degraded: int
    quota: QuotaConfig | None


class Ledger(abc.ABC):
    """What the scheduler needs from a quota store. Implementations must make ``reserve`` atomic."""

    @abc.abstractmethod
    def check_tenant(self, tenant: str) -> None:
        """Raise ``UnknownTenant`` if ``tenant`` can never be served (called at submit time)."""

    @abc.abstractmethod
    def price(self, model: str) -> Price:
        """The price of ``model`` (zero when the table has no entry)."""

    def has_cost_quota(self, tenant: str) -> bool:
        """Whether ``tenant``'s quota limits cost (called at submit time).

        The scheduler refuses requests it cannot bound the cost of (no timeout, per-second price)
        for such tenants. This default answers ``True``, the safe answer for a ledger that cannot
        tell; override it to serve untimed requests to tenants without a cost quota.
        """
        return True

    @abc.abstractmethod
    async def reserve(
        self,
        tenant: str,
        budget: int,
        worst_case: Callable[[int], Usage],
        *,
        min_budget: int = 0,
    ) -> Reservation:
        """Hold ``worst_case(budget)`` for ``tenant``, or raise ``QuotaExceeded``.

        Tenants whose quota says ``degrade`` get the largest budget in ``[min_budget, budget]``
        whose worst case fits; ``worst_case`` must be non-decreasing in the budget.
        """

    @abc.abstractmethod
    async def settle(self, reservation: Reservation, usage: Usage) -> None:
        """Release the hold and charge the actual ``usage``."""

    @abc.abstractmethod
    async def refund(self, reservation: Reservation) -> None:
        """Release the hold without charging anything (failure or cancellation)."""

    @abc.abstractmethod
    def snapshot(self) -> Mapping[str, TenantSpend]:
        """Per-tenant spend, for ``Scheduler.stats()`` and dashboards."""


class _Tally:
    """Mutable running sums (cheaper than building a frozen ``Usage`` on every update)."""

    __slots__ = ("completion", "cost", "prompt", "units")

    def __init__(self) -> None:
        self.prompt = self.completion = self.units = 0
        self.cost = 0.0

    def add(self, usage: Usage, sign: int = 1) -> None:
        self.prompt += sign * usage.prompt_tokens
        self.completion += sign * usage.completion_tokens
        self.units += sign * usage.units
        self.cost = max(0.0, self.cost + sign * usage.cost)

    @property
    def tokens(self) -> int:
        return self.prompt + self.completion

    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self.prompt,
            completion_tokens=self.completion,
            units=self.units,
            cost=self.cost,
        )


@dataclass(slots=True)
class _Account:
    quota: QuotaConfig | None
    settled: _Tally = field(default_factory=_Tally)
    window: _Tally = field(default_factory=_Tally)
    reserved: _Tally = field(default_factory=_Tally)
    events: deque[tuple[float, Usage]] = field(default_factory=deque)
    open: int = 0
    rejected: int = 0
    degraded: int = 0


class InMemoryLedger(Ledger):
    """A process-local ledger: exact, lock-protected, with sliding-window quotas.

    ``quotas`` maps tenant → ``QuotaConfig``; tenants not listed use ``default_quota``. With no
    quotas at all every tenant is unlimited (spend is still tracked); with quotas but no default,
    an unknown tenant raises ``UnknownTenant``. ``prices`` maps model name → ``Price``.
    """

    def __init__(
        self,
        quotas: Mapping[str, QuotaConfig] | None = None,
        *,
        default_quota: QuotaConfig | None = None,
        prices: Mapping[str, Price] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, quota in (quotas or {}).items():
            if not isinstance(quota, QuotaConfig):
                raise ConfigError(
                    f"quotas[{name!r}] must be a QuotaConfig, got {type(quota).__name__}"
                )
        self._quotas = dict(quotas or {})
        self._default = default_quota
        self._open_default = not self._quotas and default_quota is None
        self._prices = dict(prices or {})
        self._clock = clock
        # A threading lock (not an anyio one): reserve never awaits inside the critical section,
        # and this also keeps the ledger exact when shared by schedulers on several threads.
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}
        self._open: dict[int, Reservation] = {}
        self._ids = itertools.count(1)
        self._log = get_logger("howhard.ledger")

    def price(self, model: str) -> Price:
        """The price of ``model`` (zero when the table has no entry)."""
        return self._prices.get(model, _FREE)

    def has_cost_quota(self, tenant: str) -> bool:
        """Whether ``tenant``'s quota (its own, or the default) sets a ``cost`` limit."""
        quota = self._quotas.get(tenant, self._default)
        return quota is not None and quota.cost is not None

    def check_tenant(self, tenant: str) -> None:
        """Raise ``UnknownTenant`` when quotas are configured, none for ``tenant``, no default."""
        if self._open_default or self._default is not None or tenant in self._quotas:
            return
        raise UnknownTenant(
            f"tenant {tenant!r} has no quota; add it to quotas= or set default_quota="
        )

    def _account(self, tenant: str) -> _Account:
        account = self._accounts.get(tenant)
        if account is None:
            if tenant in self._quotas:
                quota: QuotaConfig | None = self._quotas[tenant]
            elif self._default is not None or self._open_default:
                quota = self._default
            else:
                raise UnknownTenant(
                    f"tenant {tenant!r} has no quota; add it to quotas= or set default_quota="
                )
            account = self._accounts[tenant] = _Account(quota)
        return account

    def _expire(self, account: _Account, now: float | None = None) -> None:
        quota = account.quota
        if quota is None or quota.window_s is None:
            return
        horizon = (self._clock() if now is None else now) - quota.window_s
        events = account.events
        while events and events[0][0] <= horizon:
            account.window.add(events.popleft()[1], -1)

    @staticmethod
    def _fits(account: _Account, amount: Usage) -> str | None:
        """The first limit ``amount`` would break, or ``None`` if it fits."""
        quota = account.quota
        if quota is None:
            return None
        window, reserved = account.window, account.reserved
        if quota.units is not None:
            held = window.units + reserved.units
            if held + amount.units > quota.units:
                return f"units: {held} held + {amount.units} > {quota.units}"
        if quota.tokens is not None:
            held = window.tokens + reserved.tokens
            if held + amount.total_tokens > quota.tokens:
                return f"tokens: {held} held + {amount.total_tokens} > {quota.tokens}"
        if quota.cost is not None:
            spent = window.cost + reserved.cost
            if spent + amount.cost > quota.cost + _COST_EPS:
                return f"cost: {spent:.6g} held + {amount.cost:.6g} > {quota.cost:.6g}"
        return None

    async def reserve(
        self,
        tenant: str,
        budget: int,
        worst_case: Callable[[int], Usage],
        *,
        min_budget: int = 0,
    ) -> Reservation:
        """Hold the worst case of ``budget`` (or, degrading, the largest that fits)."""
        if budget < 0 or min_budget < 0:
            raise UsageError(f"budget and min_budget must be >= 0, got {budget}, {min_budget}")
        with self._lock:
            account = self._account(tenant)
            self._expire(account)
            granted = budget
            amount = worst_case(budget)
            broken = self._fits(account, amount)
            if broken is not None and account.quota is not None:
                if account.quota.on_exceed == "degrade":
                    granted, amount, broken = self._degrade(account, budget, worst_case, min_budget)
                if broken is not None:
                    account.rejected += 1
                    raise QuotaExceeded(
                        f"tenant {tenant!r} is over quota for budget {budget} ({broken}); "
                        "wait for the window to pass, raise the quota, or use on_exceed='degrade'",
                        tenant=tenant,
                    )
                account.degraded += 1
            reservation = Reservation(next(self._ids), tenant, granted, budget, amount)
            account.reserved.add(amount)
            account.open += 1
            self._open[reservation.id] = reservation
        if granted != budget:
            self._log.info("quota.degraded", tenant=tenant, requested=budget, granted=granted)
        return reservation

    def _degrade(
        self,
        account: _Account,
        budget: int,
        worst_case: Callable[[int], Usage],
        min_budget: int,
    ) -> tuple[int, Usage, str | None]:
        # worst_case is non-decreasing, so "fits" is monotone: binary search the largest budget.
        lo, hi = min_budget, budget - 1
        best: tuple[int, Usage] | None = None
        while lo <= hi:
            mid = (lo + hi) // 2
            amount = worst_case(mid)
            if self._fits(account, amount) is None:
                best, lo = (mid, amount), mid + 1
            else:
                hi = mid - 1
        if best is None:
            amount = worst_case(min_budget)
            return min_budget, amount, self._fits(account, amount) or "even min_budget"
        return best[0], best[1], None

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

    async def settle(self, reservation: Reservation, usage: Usage) -> None:
        """Release the hold and charge ``usage`` (charged in full even above the hold)."""
        overrun = False
        with self._lock:
            account = self._close(reservation)
            account.settled.add(usage)
            account.window.add(usage)
            if account.quota is not None and account.quota.window_s is not None:
                account.events.append((self._clock(), usage))
            amount = reservation.amount
            overrun = (
                usage.total_tokens > amount.total_tokens
                or usage.units > amount.units
                or usage.cost > amount.cost + _COST_EPS
            )
        if overrun:
            # A backend that under-reports in its estimate (e.g. a long chat template) is charged
            # anyway; the warning says the reservation bound needs widening.
            self._log.warning(
                "ledger.overrun",
                tenant=reservation.tenant,
                reserved=amount,
                actual=usage,
                fix="raise SchedulerConfig.prompt_overhead_tokens",
            )

    async def refund(self, reservation: Reservation) -> None:
        """Release the hold without charging."""
        with self._lock:
            self._close(reservation)

    def snapshot(self) -> dict[str, TenantSpend]:
        """Per-tenant spend (settled, in window, reserved) and rejection counts."""
        with self._lock:
            now = self._clock()
            out = {}
            for tenant, account in self._accounts.items():
                self._expire(account, now)
                out[tenant] = TenantSpend(
                    settled=account.settled.usage(),
                    window=account.window.usage(),
                    reserved=account.reserved.usage(),
                    open_reservations=account.open,
                    rejected=account.rejected,
                    degraded=account.degraded,
                    quota=account.quota,
                )
            return out
