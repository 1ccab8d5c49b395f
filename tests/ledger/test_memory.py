"""The in-memory store passes the ledger conformance suite, plus what is particular to it."""

import contextlib
import threading
from collections.abc import AsyncIterator, Mapping

import anyio
import pytest

from howhard import Price, QuotaConfig
from howhard.errors import ConfigError, UsageError
from howhard.ledger import Amount, InMemoryLedger, Ledger
from howhard.testing import LedgerContract, ManualClock
from howhard.testing.ledger import per_unit

pytestmark = pytest.mark.anyio


class TestInMemoryLedger(LedgerContract):
    @contextlib.asynccontextmanager
    async def open_ledger(
        self,
        quotas: Mapping[str, QuotaConfig] | None = None,
        *,
        default_quota: QuotaConfig | None = None,
        clock: ManualClock,
    ) -> AsyncIterator[Ledger]:
        yield InMemoryLedger(quotas, default_quota=default_quota, clock=clock)


async def test_settling_twice_is_reported_as_misuse() -> None:
    ledger = InMemoryLedger()
    reservation = await ledger.reserve("a", per_unit(1))
    await ledger.refund(reservation)
    with pytest.raises(UsageError, match="already settled or refunded"):
        await ledger.settle(reservation, Amount())


def test_quotas_must_be_quota_configs() -> None:
    with pytest.raises(ConfigError, match=r"quotas\['a'\] must be a QuotaConfig, got dict"):
        InMemoryLedger({"a": {"units": 3}})  # type: ignore[dict-item]


def test_a_price_table_on_the_ledger_is_deprecated_but_kept() -> None:
    with pytest.warns(DeprecationWarning, match=r"pass Scheduler\(prices=...\)"):
        ledger = InMemoryLedger(prices={"big": Price(output_per_mtok=2.0)})
    assert ledger.prices["big"].output_per_mtok == 2.0


def test_schedulers_on_several_threads_share_one_exact_ledger() -> None:
    ledger = InMemoryLedger({"a": QuotaConfig(units=300)})
    granted: list[int] = []

    def worker() -> None:
        async def reserve_many() -> None:
            for _ in range(100):
                with contextlib.suppress(Exception):
                    granted.append((await ledger.reserve("a", per_unit(1))).budget)

        anyio.run(reserve_many)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spend = anyio.run(ledger.snapshot)["a"]
    assert sum(granted) == spend.reserved.units == 300
    assert spend.rejected == 100
