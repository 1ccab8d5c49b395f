"""The ledger: reserve the worst case, settle the actual, refund failures, enforce quotas."""

from collections.abc import Callable

import pytest

from howhard import Price, QuotaConfig
from howhard.errors import QuotaExceeded, UnknownTenant, UsageError
from howhard.scheduler import InMemoryLedger
from howhard.types import Usage

pytestmark = pytest.mark.anyio


def per_unit(tokens: int = 10, cost: float = 0.0) -> Callable[[int], Usage]:
    """Worst case of a budget: ``tokens`` and ``cost`` per unit."""
    return lambda b: Usage(completion_tokens=tokens * b, units=b, cost=cost * b)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_reserve_holds_the_worst_case_and_settle_charges_the_actual() -> None:
    ledger = InMemoryLedger({"a": QuotaConfig(units=10)})
    reservation = await ledger.reserve("a", 4, per_unit())
    assert reservation.budget == 4
    assert ledger.snapshot()["a"].reserved == Usage(completion_tokens=40, units=4)
    await ledger.settle(reservation, Usage(completion_tokens=12, units=4))
    spend = ledger.snapshot()["a"]
    assert spend.reserved == Usage()
    assert spend.settled == Usage(completion_tokens=12, units=4)


async def test_refund_releases_the_hold_without_charging() -> None:
    ledger = InMemoryLedger({"a": QuotaConfig(units=4)})
    reservation = await ledger.reserve("a", 4, per_unit())
    with pytest.raises(QuotaExceeded):
        await ledger.reserve("a", 1, per_unit())
    await ledger.refund(reservation)
    assert ledger.snapshot()["a"].settled == Usage()
    await ledger.reserve("a", 4, per_unit())  # the quota is free again


async def test_settling_twice_is_an_error() -> None:
    ledger = InMemoryLedger()
    reservation = await ledger.reserve("a", 1, per_unit())
    await ledger.refund(reservation)
    with pytest.raises(UsageError, match="already settled or refunded"):
        await ledger.settle(reservation, Usage())


@pytest.mark.parametrize(
    ("quota", "broken"),
    [
        (QuotaConfig(units=3), "units: 0 held \\+ 4 > 3"),
        (QuotaConfig(tokens=39), "tokens: 0 held \\+ 40 > 39"),
        (QuotaConfig(cost=0.3), "cost: 0 held \\+ 0.4 > 0.3"),
    ],
)
async def test_reject_names_the_limit_that_would_break(quota: QuotaConfig, broken: str) -> None:
    ledger = InMemoryLedger({"a": quota})
    with pytest.raises(QuotaExceeded, match=broken) as info:
        await ledger.reserve("a", 4, per_unit(cost=0.1))
    assert info.value.tenant == "a"
    assert ledger.snapshot()["a"].rejected == 1
    assert ledger.snapshot()["a"].reserved == Usage()  # nothing changed


async def test_degrade_grants_the_largest_budget_that_fits() -> None:
    ledger = InMemoryLedger({"a": QuotaConfig(units=10, on_exceed="degrade")})
    await ledger.reserve("a", 7, per_unit())
    reservation = await ledger.reserve("a", 8, per_unit())
    assert (reservation.requested, reservation.budget) == (8, 3)
    assert ledger.snapshot()["a"].degraded == 1


async def test_degrade_below_min_budget_rejects() -> None:
    ledger = InMemoryLedger({"a": QuotaConfig(units=2, on_exceed="degrade")})
    with pytest.raises(QuotaExceeded, match="over quota"):
        await ledger.reserve("a", 5, per_unit(), min_budget=3)


async def test_window_expires_settled_spend() -> None:
    clock = FakeClock()
    ledger = InMemoryLedger({"a": QuotaConfig(units=5, window_s=60.0)}, clock=clock)
    await ledger.settle(await ledger.reserve("a", 5, per_unit()), Usage(units=5))
    with pytest.raises(QuotaExceeded):
        await ledger.reserve("a", 1, per_unit())
    clock.now = 59.0
    with pytest.raises(QuotaExceeded):
        await ledger.reserve("a", 1, per_unit())
    clock.now = 60.5
    await ledger.reserve("a", 5, per_unit())
    spend = ledger.snapshot()["a"]
    assert spend.window == Usage() and spend.settled.units == 5


async def test_unknown_tenant_without_default_quota() -> None:
    ledger = InMemoryLedger({"a": QuotaConfig(units=1)})
    with pytest.raises(UnknownTenant, match="tenant 'b' has no quota"):
        await ledger.reserve("b", 1, per_unit())
    defaulted = InMemoryLedger({"a": QuotaConfig(units=1)}, default_quota=QuotaConfig(units=2))
    assert (await defaulted.reserve("b", 2, per_unit())).budget == 2


async def test_unlimited_ledger_tracks_spend_and_prices_models() -> None:
    ledger = InMemoryLedger(prices={"big": Price(input_per_mtok=1.0, output_per_mtok=2.0)})
    assert ledger.price("big").cost(1_000_000, 500_000) == pytest.approx(2.0)
    assert ledger.price("unknown").cost(10**9, 10**9) == 0.0
    reservation = await ledger.reserve("anyone", 1000, per_unit())
    assert reservation.budget == 1000


async def test_overrun_is_charged_in_full_and_logged(log_events: list[dict[str, object]]) -> None:
    ledger = InMemoryLedger()
    reservation = await ledger.reserve("a", 1, per_unit(tokens=5))
    await ledger.settle(reservation, Usage(completion_tokens=9, units=1))
    assert ledger.snapshot()["a"].settled.completion_tokens == 9
    assert [e["event"] for e in log_events] == ["ledger.overrun"]
