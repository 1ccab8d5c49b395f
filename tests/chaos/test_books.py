"""The books under hostile settles: a stateful property test of the quota rules and the store.

Reservations are made, settled with whatever figures a hostile backend might produce (NaN,
floats, negatives, bools, absurd counts) and refunded in random order; after every step the
tenant's books must be integers, within the quota, and agree with a model of the open holds.
"""

import contextlib
import math

import anyio
import anyio.from_thread
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from howhard import Price, QuotaConfig, Scheduler
from howhard.errors import BackendError, QuotaExceeded, UsageError
from howhard.ledger import Amount, Hold, InMemoryLedger, Reservation
from howhard.ledger.rules import total
from howhard.testing.chaos import HostileBackend, tagged
from howhard.types import GenerationParams, Usage

QUOTA = QuotaConfig(units=12, tokens=300, cost=0.05)
_FIELD = st.one_of(
    st.integers(min_value=0, max_value=10**12),
    st.integers(max_value=-1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)


class HostileSettles(RuleBasedStateMachine):
    """The in-memory store beside a model of its open holds."""

    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        self.ledger = InMemoryLedger({"t": QUOTA})
        self.open: dict[str, Amount] = {}
        self.charged = Amount()

    def _run(self, coroutine_function, *args):  # type: ignore[no-untyped-def]
        return anyio.run(coroutine_function, *args)

    @rule(target=holds, units=st.integers(0, 4), tokens=st.integers(0, 120))
    def reserve(self, units: int, tokens: int) -> Reservation | None:
        hold = Hold(units, Amount(units, tokens // 2, tokens - tokens // 2, tokens * 100))
        try:
            reservation: Reservation = self._run(self.ledger.reserve, "t", hold)
        except QuotaExceeded:
            return None
        self.open[reservation.id] = reservation.amount
        return reservation

    @rule(reservation=consumes(holds), actual=st.tuples(*[_FIELD] * 4).map(lambda t: Amount(*t)))
    def settle(self, reservation: Reservation | None, actual: Amount) -> None:
        if reservation is None:
            return
        valid = all(type(v) is int and v >= 0 for v in actual)
        try:
            charged: Amount = self._run(self.ledger.settle, reservation, actual)
        except UsageError:
            assert not valid  # refused, books unchanged: the hold is still open
            self._run(self.ledger.refund, reservation)
        else:
            assert valid
            assert all(0 <= c <= h for c, h in zip(charged, reservation.amount, strict=True))
            self.charged = self.charged.plus(charged)
        del self.open[reservation.id]

    @rule(reservation=consumes(holds))
    def refund(self, reservation: Reservation | None) -> None:
        if reservation is not None:
            self._run(self.ledger.refund, reservation)
            del self.open[reservation.id]

    @invariant()
    def books_are_integers_within_the_quota(self) -> None:
        spend = self.ledger.snapshot_nowait().get("t")
        if spend is None:
            return
        held = spend.window + spend.reserved
        assert QUOTA.units is not None and held.units <= QUOTA.units
        assert QUOTA.tokens is not None and held.total_tokens <= QUOTA.tokens
        assert math.isfinite(held.cost) and held.cost <= 0.05 + 1e-12
        assert Amount.of(spend.settled) == self.charged
        assert spend.open_reservations == len(self.open)
        assert Amount.of(spend.reserved) == total(self.open.values())


TestHostileSettles = HostileSettles.TestCase
TestHostileSettles.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)


@pytest.mark.anyio
async def test_money_on_the_books_is_exact_after_many_priced_holds() -> None:
    # Float sums once left reserved.cost at 1e-16 with nothing reserved.
    ledger = InMemoryLedger()
    async with Scheduler(
        backend=HostileBackend(),
        average_budget=3,
        ledger=ledger,
        prices={"hostile": Price(input_per_mtok=0.1, output_per_mtok=0.3)},
        params=GenerationParams(max_tokens=7),
    ) as scheduler:
        for i in range(300):
            prompt = f"q{i}" if i % 3 else tagged(f"q{i}", "rejected")
            with contextlib.suppress(BackendError):  # the rejected ones: holds refunded
                await scheduler.submit(prompt)
    spend = (await ledger.snapshot())["default"]
    assert spend.reserved == Usage() and spend.open_reservations == 0
    # 200 answered calls, each round(1 x 0.1 + 12 x 0.3) = 4 micro-units: exactly.
    assert spend.settled.cost == 200 * 4 / 1e6
