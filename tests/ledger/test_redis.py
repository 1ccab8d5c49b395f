"""RedisLedger on a real Valkey server passes the ledger conformance suite unchanged."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Mapping

import pytest

from howhard import QuotaConfig
from howhard.ledger import Ledger, RedisLedger
from howhard.testing import LedgerContract, ManualClock
from howhard.testing.valkey import LocalValkey

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

_stores = itertools.count()


class TestRedisLedger(LedgerContract):
    """Each store gets a fresh key prefix on the one server; the suite's clock stands in for
    the server's ``TIME`` so its window tests are exact (tests/ledger/test_redis_server.py
    checks the server's own clock)."""

    @pytest.fixture(autouse=True)
    def _server(self, valkey: LocalValkey) -> None:
        self.url = valkey.url

    @contextlib.asynccontextmanager
    async def open_ledger(
        self,
        quotas: Mapping[str, QuotaConfig] | None = None,
        *,
        default_quota: QuotaConfig | None = None,
        clock: ManualClock,
    ) -> AsyncIterator[Ledger]:
        prefix = f"conformance:{next(_stores)}:"
        async with RedisLedger(
            self.url, quotas, default_quota=default_quota, key_prefix=prefix, clock=clock
        ) as ledger:
            yield ledger
