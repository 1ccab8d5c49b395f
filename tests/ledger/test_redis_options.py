"""RedisLedger's options are checked when it is built, before anything connects (no server)."""

from __future__ import annotations

from typing import Any

import pytest

from howhard import QuotaConfig
from howhard.errors import ConfigError, UsageError
from howhard.ledger import InMemoryLedger, RedisLedger
from howhard.serve.config import LedgerConfig
from howhard.serve.gateway import build_ledger
from howhard.testing.ledger import per_unit

URL = "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "http://127.0.0.1:6379"}, r"url must be a redis://host:port/db .*got 'http:"),
        ({"lease_ttl_s": 0}, "lease_ttl_s must be a number of seconds > 0, got 0"),
        ({"lease_ttl_s": float("inf")}, "lease_ttl_s must be a number of seconds > 0"),
        ({"timeout_s": float("nan")}, "timeout_s must be a number of seconds > 0"),
        ({"retries": -1}, "retries must be an integer >= 0, got -1"),
        ({"max_connections": 0}, "max_connections must be an integer >= 1, got 0"),
        ({"key_prefix": ""}, "key_prefix must not be empty"),
        ({"fail_open": "vip"}, "fail_open must be a collection of tenants, got 'vip'"),
        ({"quotas": {"a": {"units": 3}}}, r"quotas\['a'\] must be a QuotaConfig, got dict"),
    ],
)
def test_bad_options_are_refused_naming_the_option(kwargs: dict[str, Any], message: str) -> None:
    options: dict[str, Any] = {"url": URL, **kwargs}
    with pytest.raises(ConfigError, match=message):
        RedisLedger(options.pop("url"), options.pop("quotas", None), **options)


@pytest.mark.anyio
async def test_using_it_without_async_with_says_how() -> None:
    ledger = RedisLedger(URL)
    assert await ledger.check_tenant("anyone") is None  # quotas are known without the server
    with pytest.raises(UsageError, match=r"not open; use it as `async with RedisLedger"):
        await ledger.reserve("anyone", per_unit(1))


def test_the_gateway_builds_the_store_its_ledger_section_names() -> None:
    quotas = {"team": QuotaConfig(units=5)}
    assert isinstance(build_ledger(LedgerConfig(), quotas), InMemoryLedger)
    config = LedgerConfig(
        kind="redis", url=URL, key_prefix="prod:", lease_ttl_s=12.0, fail_open=["team"]
    )
    ledger = build_ledger(config, quotas)
    assert isinstance(ledger, RedisLedger)
    assert (ledger.url, ledger.key_prefix, ledger.lease_ttl_s) == (URL, "prod:", 12.0)
    assert ledger.fail_open == frozenset({"team"})
