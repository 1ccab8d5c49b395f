"""The ledger conformance suite: what every quota store must do, runnable against any store.

Subclass :class:`LedgerContract` in a test module and say how to open your store; every
``test_*`` method then runs against it, unchanged for each store::

    import contextlib
    from howhard.ledger import InMemoryLedger
    from howhard.testing import LedgerContract

    class TestInMemoryLedger(LedgerContract):
        @contextlib.asynccontextmanager
        async def open_ledger(self, quotas=None, *, default_quota=None, clock):
            yield InMemoryLedger(quotas, default_quota=default_quota, clock=clock)

``clock`` is a :class:`ManualClock` the suite advances through :meth:`LedgerContract.advance`;
a store whose windows run on a server's clock gives its scripts a test offset, or overrides
``advance`` (e.g. to shift that offset), so the window tests drive time. Each call to
``open_ledger`` must yield a fresh, empty store (a new key prefix on a shared server).

The suite needs pytest, anyio's pytest plugin and hypothesis (the ``dev`` extra).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
import anyio.from_thread
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from howhard.config import QuotaConfig
from howhard.errors import QuotaExceeded, UnknownTenant, UsageError
from howhard.ledger import Amount, Hold, Ledger, Reservation
from howhard.ledger.rules import MICROS, charge, in_window, total
from howhard.types import Usage

__all__ = ["LedgerContract", "ManualClock", "per_unit"]


class ManualClock:
    """A clock that moves only when told to (seconds, like ``time.monotonic``)."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self.now += seconds


def per_unit(budget: int, *, tokens: int = 10, cost_micros: int = 0) -> Hold:
    """A hold whose worst case is ``tokens`` completion tokens and ``cost_micros`` per unit."""
    return Hold(
        budget,
        Amount(units=budget, completion_tokens=tokens * budget, cost_micros=cost_micros * budget),
    )


def fallbacks(budget: int, *, low: int = 0, **kwargs: Any) -> list[Hold]:
    """The smaller budgets' holds ``low .. budget - 1`` (what degrade mode may grant)."""
    return [per_unit(b, **kwargs) for b in range(low, budget)]


class LedgerContract:
    """The behaviour every :class:`howhard.ledger.Ledger` store must show; see the module doc."""

    pytestmark = pytest.mark.anyio

    def open_ledger(
        self,
        quotas: Mapping[str, QuotaConfig] | None = None,
        *,
        default_quota: QuotaConfig | None = None,
        clock: ManualClock,
    ) -> contextlib.AbstractAsyncContextManager[Ledger]:
        """An async context manager yielding a fresh store with these quotas (override this)."""
        raise NotImplementedError("subclass LedgerContract and implement open_ledger")

    async def advance(self, clock: ManualClock, seconds: float) -> None:
        """Let ``seconds`` pass for the store's windows (override for a server-side clock)."""
        clock.advance(seconds)

    @contextlib.asynccontextmanager
    async def _ledger(
        self, quotas: Mapping[str, QuotaConfig] | None = None, **kwargs: Any
    ) -> AsyncIterator[tuple[Ledger, ManualClock]]:
        clock = ManualClock()
        async with self.open_ledger(quotas, clock=clock, **kwargs) as ledger:
            yield ledger, clock

    # ---------------------------------------------------------------- reserve, settle, refund

    async def test_reserve_holds_the_worst_case_and_settle_charges_the_actual(self) -> None:
        async with self._ledger({"a": QuotaConfig(units=10)}) as (ledger, _):
            reservation = await ledger.reserve("a", per_unit(4))
            assert (reservation.budget, reservation.requested) == (4, 4)
            assert (await ledger.snapshot())["a"].reserved == Usage(completion_tokens=40, units=4)
            actual = Amount(units=4, completion_tokens=12)
            assert await ledger.settle(reservation, actual) == actual
            spend = (await ledger.snapshot())["a"]
            assert spend.reserved == Usage() and spend.open_reservations == 0
            assert spend.settled == Usage(completion_tokens=12, units=4)

    async def test_refund_releases_the_hold_without_charging(self) -> None:
        async with self._ledger({"a": QuotaConfig(units=4)}) as (ledger, _):
            reservation = await ledger.reserve("a", per_unit(4))
            with pytest.raises(QuotaExceeded):
                await ledger.reserve("a", per_unit(1))
            await ledger.refund(reservation)
            assert (await ledger.snapshot())["a"].settled == Usage()
            await ledger.reserve("a", per_unit(4))  # the quota is free again

    async def test_settle_never_charges_above_the_hold(self) -> None:
        async with self._ledger({"a": QuotaConfig(units=10, tokens=100)}) as (ledger, _):
            reservation = await ledger.reserve("a", per_unit(1, tokens=5, cost_micros=7))
            reported = Amount(units=1, prompt_tokens=3, completion_tokens=9, cost_micros=10**9)
            charged = await ledger.settle(reservation, reported)
            assert charged == Amount(units=1, prompt_tokens=0, completion_tokens=5, cost_micros=7)
            assert (await ledger.snapshot())["a"].settled == charged.usage()

    async def test_negative_usage_is_refused_and_changes_nothing(self) -> None:
        async with self._ledger() as (ledger, _):
            reservation = await ledger.reserve("a", per_unit(2))
            with pytest.raises(UsageError, match=">= 0"):
                await ledger.settle(reservation, Amount(units=2, completion_tokens=-5))
            spend = (await ledger.snapshot())["a"]
            assert spend.settled == Usage() and spend.open_reservations == 1
            await ledger.refund(reservation)

    async def test_closing_a_reservation_twice_never_changes_the_books(self) -> None:
        async with self._ledger() as (ledger, _):
            reservation = await ledger.reserve("a", per_unit(1))
            await ledger.settle(reservation, Amount(units=1, completion_tokens=3))
            before = (await ledger.snapshot())["a"]
            # A store may report the misuse (UsageError) or ignore it (idempotent leases).
            with contextlib.suppress(UsageError):
                await ledger.settle(reservation, Amount(units=1, completion_tokens=3))
            with contextlib.suppress(UsageError):
                await ledger.refund(reservation)
            assert (await ledger.snapshot())["a"] == before

    # ---------------------------------------------------------------- quota rules

    @pytest.mark.parametrize(
        ("quota", "broken"),
        [
            (QuotaConfig(units=3), "units: 0 held \\+ 4 > 3"),
            (QuotaConfig(tokens=39), "tokens: 0 held \\+ 40 > 39"),
            (QuotaConfig(cost=0.3), "cost: 0 held \\+ 0.4 > 0.3"),
        ],
    )
    async def test_reject_names_the_limit_that_would_break(
        self, quota: QuotaConfig, broken: str
    ) -> None:
        async with self._ledger({"a": quota}) as (ledger, _):
            with pytest.raises(QuotaExceeded, match=broken) as info:
                await ledger.reserve("a", per_unit(4, cost_micros=100_000))
            assert info.value.tenant == "a"
            spend = (await ledger.snapshot())["a"]
            assert spend.rejected == 1 and spend.reserved == Usage()  # nothing changed

    async def test_money_is_counted_exactly(self) -> None:
        # 0.1 + 0.2 != 0.3 in floats; in micro-units three holds of 0.1 fill a 0.3 quota.
        async with self._ledger({"a": QuotaConfig(cost=0.3)}) as (ledger, _):
            holds = [await ledger.reserve("a", per_unit(1, cost_micros=100_000)) for _ in "abc"]
            with pytest.raises(QuotaExceeded):
                await ledger.reserve("a", per_unit(1, cost_micros=1))
            for reservation in holds:
                await ledger.refund(reservation)
            assert (await ledger.snapshot())["a"].reserved.cost == 0.0

    async def test_degrade_grants_the_largest_budget_that_fits(self) -> None:
        quota = QuotaConfig(units=10, on_exceed="degrade")
        async with self._ledger({"a": quota}) as (ledger, _):
            await ledger.reserve("a", per_unit(7))
            reservation = await ledger.reserve("a", per_unit(8), fallbacks=fallbacks(8))
            assert (reservation.requested, reservation.budget) == (8, 3)
            assert reservation.amount == per_unit(3).amount
            assert (await ledger.snapshot())["a"].degraded == 1

    async def test_degrade_below_the_smallest_fallback_rejects(self) -> None:
        quota = QuotaConfig(units=2, on_exceed="degrade")
        async with self._ledger({"a": quota}) as (ledger, _):
            with pytest.raises(QuotaExceeded, match="over quota"):
                await ledger.reserve("a", per_unit(5), fallbacks=fallbacks(5, low=3))

    async def test_reject_mode_ignores_fallbacks(self) -> None:
        async with self._ledger({"a": QuotaConfig(units=2)}) as (ledger, _):
            with pytest.raises(QuotaExceeded):
                await ledger.reserve("a", per_unit(5), fallbacks=fallbacks(5))

    async def test_window_expires_settled_spend(self) -> None:
        quota = QuotaConfig(units=5, window_s=1.0)
        async with self._ledger({"a": quota}) as (ledger, clock):
            await ledger.settle(await ledger.reserve("a", per_unit(5)), Amount(units=5))
            with pytest.raises(QuotaExceeded):
                await ledger.reserve("a", per_unit(1))
            await self.advance(clock, 0.9)
            with pytest.raises(QuotaExceeded):
                await ledger.reserve("a", per_unit(1))
            await self.advance(clock, 0.2)
            await ledger.reserve("a", per_unit(5))
            spend = (await ledger.snapshot())["a"]
            assert spend.window == Usage() and spend.settled.units == 5

    async def test_tenants_are_known_by_quota_or_default(self) -> None:
        async with self._ledger({"a": QuotaConfig(units=1)}) as (ledger, _):
            assert await ledger.check_tenant("a") == QuotaConfig(units=1)
            with pytest.raises(UnknownTenant, match="tenant 'b' has no quota"):
                await ledger.check_tenant("b")
            with pytest.raises(UnknownTenant, match="tenant 'b' has no quota"):
                await ledger.reserve("b", per_unit(1))
        default = QuotaConfig(units=2)
        async with self._ledger({"a": QuotaConfig(units=1)}, default_quota=default) as (ledger, _):
            assert await ledger.check_tenant("b") == default
            assert (await ledger.reserve("b", per_unit(2))).budget == 2

    async def test_without_quotas_everyone_is_unlimited_and_tracked(self) -> None:
        async with self._ledger() as (ledger, _):
            assert await ledger.check_tenant("anyone") is None
            reservation = await ledger.reserve("anyone", per_unit(1000))
            assert reservation.budget == 1000
            await ledger.settle(reservation, Amount(units=1000))
            assert (await ledger.snapshot())["anyone"].settled.units == 1000

    async def test_concurrent_reservations_never_overspend(self) -> None:
        quota = QuotaConfig(units=50, tokens=400)
        granted: list[Reservation] = []
        async with self._ledger({"a": quota}) as (ledger, _):

            async def one(budget: int) -> None:
                with contextlib.suppress(QuotaExceeded):
                    granted.append(await ledger.reserve("a", per_unit(budget)))

            async with anyio.create_task_group() as tg:
                for i in range(200):
                    tg.start_soon(one, 1 + i % 4)
            spend = (await ledger.snapshot())["a"]
            assert spend.reserved.units == sum(r.budget for r in granted) <= 50
            assert spend.reserved.total_tokens <= 400
            assert spend.open_reservations == len(granted)
            assert spend.rejected == 200 - len(granted)

    # ---------------------------------------------------------------- random operations

    def test_random_operations_never_overspend_and_keep_the_books(self) -> None:
        suite = self
        units = st.integers(min_value=0, max_value=6)

        class Books(RuleBasedStateMachine):
            """A model of the books (the rules) beside the store, compared after every step."""

            holds = Bundle("holds")

            def __init__(self) -> None:
                super().__init__()
                self.stack = contextlib.ExitStack()
                self.portal = self.stack.enter_context(
                    anyio.from_thread.start_blocking_portal("asyncio")
                )
                self.clock = ManualClock()
                self.quota = QuotaConfig()
                self.open: dict[str, Reservation] = {}
                self.settled: list[tuple[float, Amount]] = []
                self.ledger: Ledger | None = None

            @initialize(
                limit_units=st.one_of(st.none(), st.integers(0, 20)),
                limit_tokens=st.one_of(st.none(), st.integers(0, 200)),
                limit_cost=st.one_of(st.none(), st.integers(0, 30)),
                degrade=st.booleans(),
                window=st.one_of(st.none(), st.sampled_from([1.0, 2.0])),
            )
            def open_store(
                self,
                limit_units: int | None,
                limit_tokens: int | None,
                limit_cost: int | None,
                degrade: bool,
                window: float | None,
            ) -> None:
                self.quota = QuotaConfig(
                    units=limit_units,
                    tokens=limit_tokens,
                    cost=None if limit_cost is None else limit_cost / 1000,
                    on_exceed="degrade" if degrade else "reject",
                    window_s=window,
                )
                cm = suite.open_ledger({"t": self.quota}, clock=self.clock)
                self.ledger = self.stack.enter_context(self.portal.wrap_async_context_manager(cm))

            @rule(
                target=holds,
                budget=units,
                tokens=st.integers(0, 12),
                micros=st.integers(0, 3000),
            )
            def reserve(self, budget: int, tokens: int, micros: int) -> Reservation | None:
                assert self.ledger is not None
                ledger = self.ledger
                hold = per_unit(budget, tokens=tokens, cost_micros=micros)
                smaller = fallbacks(budget, tokens=tokens, cost_micros=micros)

                async def reserve() -> Reservation:
                    return await ledger.reserve("t", hold, fallbacks=smaller)

                try:
                    reservation = self.portal.call(reserve)
                except QuotaExceeded:
                    return None
                assert reservation.budget <= budget
                assert (
                    reservation.amount
                    == per_unit(reservation.budget, tokens=tokens, cost_micros=micros).amount
                )
                self.open[reservation.id] = reservation
                return reservation

            @rule(reservation=consumes(holds), share=st.sampled_from([0.0, 0.5, 1.0, 3.0]))
            def settle(self, reservation: Reservation | None, share: float) -> None:
                if reservation is None:
                    return
                held = reservation.amount
                actual = Amount(
                    units=reservation.budget,
                    completion_tokens=int(held.completion_tokens * share),
                    cost_micros=int(held.cost_micros * share),
                )
                assert self.ledger is not None
                charged = self.portal.call(self.ledger.settle, reservation, actual)
                assert charged == charge(held, actual)
                del self.open[reservation.id]
                self.settled.append((self.clock(), charged))

            @rule(reservation=consumes(holds))
            def refund(self, reservation: Reservation | None) -> None:
                if reservation is None:
                    return
                assert self.ledger is not None
                self.portal.call(self.ledger.refund, reservation)
                del self.open[reservation.id]

            @rule(seconds=st.sampled_from([0.3, 1.0, 2.5]))
            def wait(self, seconds: float) -> None:
                self.portal.call(suite.advance, self.clock, seconds)

            @invariant()
            def books_match_the_rules(self) -> None:
                if self.ledger is None:
                    return
                spend = self.portal.call(self.ledger.snapshot).get("t")
                if spend is None:  # no operation has touched the tenant yet
                    assert not self.open and not self.settled
                    return
                reserved = total(r.amount for r in self.open.values())
                settled = total(a for _, a in self.settled)
                now = self.clock()
                window = total(a for t, a in self.settled if in_window(t, now, self.quota.window_s))
                assert spend.open_reservations == len(self.open)
                assert spend.reserved == reserved.usage()
                assert spend.settled == settled.usage()
                assert spend.window == window.usage()
                held = window.plus(reserved)
                quota = self.quota
                assert quota.units is None or held.units <= quota.units
                assert quota.tokens is None or held.tokens <= quota.tokens
                assert quota.cost is None or held.cost_micros <= round(quota.cost * MICROS)

            def teardown(self) -> None:
                self.stack.close()

        run_state_machine_as_test(  # type: ignore[no-untyped-call]  # hypothesis leaves it untyped
            Books,
            settings=settings(
                max_examples=40,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
