"""RedisLedger against a real Valkey server: many processes, killed holders, outages, the server's
clock. The conformance suite (test_redis.py) covers the rules; this covers what sharing adds."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from redis.asyncio import Redis

from howhard import QuotaConfig, Scheduler
from howhard.backends import ScriptedBackend
from howhard.errors import LedgerUnavailable, QuotaExceeded
from howhard.ledger import Amount, RedisLedger
from howhard.testing import ManualClock
from howhard.testing.ledger import per_unit
from howhard.testing.valkey import LocalValkey
from howhard.types import Usage

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
_prefixes = itertools.count()


def fresh_prefix() -> str:
    return f"test:{os.getpid()}:{next(_prefixes)}:"


def worker(*args: str) -> subprocess.Popen[str]:
    """One ledger_worker process (see its docstring), talking over pipes."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.ledger.ledger_worker", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def own_server() -> Iterator[LocalValkey]:
    """A server of the test's own, for tests that stop, restart or pause it."""
    with LocalValkey() as server:
        yield server


async def server_time(client: Redis) -> float:
    seconds, micros = await client.time()
    return seconds + micros / 1_000_000


# ---------------------------------------------------------------------- many processes


async def test_four_processes_of_250_submitters_share_one_quota_exactly(
    valkey: LocalValkey,
) -> None:
    # 1,000 requests of 2 units each against 1,200 units: exactly 600 fit, whoever asks first.
    prefix, quota = fresh_prefix(), QuotaConfig(units=1200, tokens=1_000_000)
    workers = [worker("submit", valkey.url, prefix, quota.model_dump_json(), "250") for _ in "abcd"]
    try:
        for process in workers:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outputs = [process.communicate(timeout=120)[0] for process in workers]
    finally:
        for process in workers:
            process.kill()
    assert all(process.returncode == 0 for process in workers), outputs
    reports = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    produced = Usage(
        units=sum(r["units"] for r in reports),
        prompt_tokens=sum(r["prompt_tokens"] for r in reports),
        completion_tokens=sum(r["completion_tokens"] for r in reports),
    )
    async with RedisLedger(valkey.url, {"t": quota}, key_prefix=prefix) as ledger:
        spend = (await ledger.snapshot())["t"]
        audit = await ledger.audit("t")
    # The most ever held at once, recorded by the server at every reserve: filled to the brim,
    # never past it.
    assert audit.peak_units == 1200
    assert spend.settled == produced  # every unit and token the backends produced, once
    assert produced.units == 1200
    assert spend.rejected == sum(r["refused"] for r in reports) == 400
    assert spend.open_reservations == audit.open_leases == 0 and spend.reserved == Usage()
    assert audit.expired == 0


async def test_a_killed_holders_leases_expire_and_the_others_continue(valkey: LocalValkey) -> None:
    prefix, ttl = fresh_prefix(), 1.0
    with worker("hold", valkey.url, prefix, "5", str(ttl)) as holder:
        try:
            await _outlive(holder, valkey.url, prefix, ttl)
        finally:
            holder.kill()


async def _outlive(holder: subprocess.Popen[str], url: str, prefix: str, ttl: float) -> None:
    """Hold the quota beside ``holder``, kill it, and watch its leases lapse."""
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "ready"  # 4 open leases, 1 unit settled
    async with RedisLedger(
        url, {"t": QuotaConfig(units=5)}, key_prefix=prefix, lease_ttl_s=ttl
    ) as ledger:
        # Alive, the holder renews: well past the TTL its leases still hold the quota.
        deadline = time.monotonic() + 2.5 * ttl
        while time.monotonic() < deadline:
            assert (await ledger.audit("t")).open_leases == 4
            with pytest.raises(QuotaExceeded):
                await ledger.reserve("t", per_unit(1))
            await anyio.sleep(0.2)
        holder.kill()
        holder.wait()
        # Polling the server is the only way to see a lease lapse (nothing is told); give up
        # after ten TTLs.
        for _ in range(int(10 * ttl / 0.05)):
            if not (await ledger.audit("t")).open_leases:
                break
            await anyio.sleep(0.05)
        audit = await ledger.audit("t")
        assert (audit.open_leases, audit.expired) == (0, 4)
        spend = (await ledger.snapshot())["t"]
        assert spend.settled == Usage(units=1, completion_tokens=3)  # charged once, kept
        assert spend.reserved == Usage() and spend.open_reservations == 0
        # The quota the dead process held is free for the living.
        for _ in range(4):
            await ledger.settle(await ledger.reserve("t", per_unit(1)), Amount(units=1))
        with pytest.raises(QuotaExceeded):
            await ledger.reserve("t", per_unit(1))
        assert (await ledger.snapshot())["t"].settled.units == 5


# ---------------------------------------------------------------------- leases


async def test_renewal_keeps_a_lease_and_without_it_the_lease_lapses(valkey: LocalValkey) -> None:
    clock = ManualClock()
    async with RedisLedger(
        valkey.url,
        {"t": QuotaConfig(units=2)},
        key_prefix=fresh_prefix(),
        lease_ttl_s=10.0,
        clock=clock,
    ) as ledger:
        kept = await ledger.reserve("t", per_unit(1))
        clock.advance(8.0)
        assert await ledger.renew() == 1  # kept: now expires at 18
        lapsing = await ledger.reserve("t", per_unit(1))  # expires at 18 too, never renewed
        clock.advance(9.0)
        assert await ledger.renew() == 2  # both still open at 17; both renewed to 27
        ledger._leases.pop(lapsing.id)  # as if its holder had died: no one renews it
        clock.advance(9.0)
        await ledger.renew()
        clock.advance(9.0)  # 35: kept was renewed to 36, lapsing expired at 27
        audit = await ledger.audit("t")
        assert (audit.open_leases, audit.expired) == (1, 1)
        # Settling the lapsed lease charges nothing; its hold was already released.
        assert await ledger.settle(lapsing, Amount(units=1, completion_tokens=9)) == Amount()
        charged = await ledger.settle(kept, Amount(units=1, completion_tokens=4))
        assert charged == Amount(units=1, completion_tokens=4)
        spend = (await ledger.snapshot())["t"]
        assert spend.settled == Usage(units=1, completion_tokens=4)
        assert spend.reserved == Usage() and spend.open_reservations == 0


async def test_many_leases_are_renewed_in_chunks(valkey: LocalValkey) -> None:
    clock = ManualClock()
    async with RedisLedger(
        valkey.url, key_prefix=fresh_prefix(), lease_ttl_s=10.0, clock=clock
    ) as ledger:
        async with anyio.create_task_group() as tg:
            for _ in range(1_200):  # more than one renewal script takes
                tg.start_soon(ledger.reserve, "t", per_unit(1))
        clock.advance(8.0)
        assert await ledger.renew() == 1_200
        clock.advance(8.0)  # past the first expiry, before the renewed one
        audit = await ledger.audit("t")
        assert (audit.open_leases, audit.expired) == (1_200, 0)


async def test_a_repeated_settle_returns_the_first_charge_and_charges_nothing(
    valkey: LocalValkey,
) -> None:
    async with RedisLedger(valkey.url, key_prefix=fresh_prefix()) as ledger:
        reservation = await ledger.reserve("t", per_unit(2))
        first = await ledger.settle(reservation, Amount(units=2, completion_tokens=7))
        again = await ledger.settle(reservation, Amount(units=2, completion_tokens=20))
        await ledger.refund(reservation)
        assert first == again == Amount(units=2, completion_tokens=7)
        assert (await ledger.snapshot())["t"].settled == Usage(units=2, completion_tokens=7)


# ---------------------------------------------------------------------- outages


async def test_a_stopped_server_fails_closed_and_nothing_is_charged_twice_when_back(
    own_server: LocalValkey,
) -> None:
    async with RedisLedger(
        own_server.url, {"t": QuotaConfig(units=10)}, key_prefix="p:", timeout_s=0.5, retries=1
    ) as ledger:
        first = await ledger.reserve("t", per_unit(3))
        running = await ledger.reserve("t", per_unit(2))
        await ledger.settle(first, Amount(units=3, completion_tokens=30))
        own_server.stop()
        with pytest.raises(LedgerUnavailable, match=r"cannot be reached .*fail_open="):
            await ledger.reserve("t", per_unit(1))
        # The running request finished during the outage: its charge waits for the server.
        actual = Amount(units=2, completion_tokens=11)
        assert await ledger.settle(running, actual) == actual
        assert ledger.pending == 1
        await ledger.renew()  # still down: stays queued
        assert ledger.pending == 1
        own_server.start()  # same data (append-only file)
        await ledger.renew()
        assert ledger.pending == 0
        await ledger.renew()
        assert await ledger.settle(running, actual) == actual  # the first charge, not a second
        spend = (await ledger.snapshot())["t"]
        assert spend.settled == Usage(units=5, completion_tokens=41)
        assert spend.reserved == Usage() and spend.open_reservations == 0
        # No overspend after the return: exactly the 5 units left fit.
        await ledger.reserve("t", per_unit(5))
        with pytest.raises(QuotaExceeded):
            await ledger.reserve("t", per_unit(1))


async def test_a_scheduler_on_an_unreachable_store_answers_with_the_typed_error(
    own_server: LocalValkey,
) -> None:
    backend = ScriptedBackend()
    async with (
        RedisLedger(own_server.url, timeout_s=0.5, retries=0, fail_open={"vip"}) as ledger,
        Scheduler(backend=backend, ledger=ledger, average_budget=2.0) as scheduler,
    ):
        assert (await scheduler.submit("2 + 2?", tenant="t")).budget == 2
        own_server.stop()
        with pytest.raises(LedgerUnavailable):
            await scheduler.submit("3 + 3?", tenant="t")
        assert len(backend.calls) == 1  # nothing ran unpaid
        # A fail-open tenant is served, uncounted, during the outage.
        assert (await scheduler.submit("4 + 4?", tenant="vip")).budget == 2
        own_server.start()
        spend = await ledger.snapshot()
        assert spend["t"].settled.units == 2 and "vip" not in spend


async def test_a_frozen_server_times_out_into_the_typed_error(own_server: LocalValkey) -> None:
    clock = ManualClock()
    async with RedisLedger(
        own_server.url, key_prefix="p:", timeout_s=0.3, retries=0, lease_ttl_s=5.0, clock=clock
    ) as ledger:
        await ledger.refund(await ledger.reserve("t", per_unit(1)))  # connected, scripts loaded
        own_server.pause()
        try:
            with pytest.raises(LedgerUnavailable, match="cannot be reached"):
                await ledger.reserve("t", per_unit(1))
        finally:
            own_server.resume()
        # The server may still run the reserve it received; that lease has no holder, so it
        # lapses after the TTL and nothing is charged.
        clock.advance(5.0)
        spend = (await ledger.snapshot())["t"]
        assert spend.open_reservations == 0 and spend.reserved == Usage()
        assert spend.settled == Usage()


# ---------------------------------------------------------------------- the server's clock


async def test_windows_run_on_the_servers_clock(valkey: LocalValkey) -> None:
    prefix, window = fresh_prefix(), 0.5
    client = Redis.from_url(valkey.url)
    try:
        async with RedisLedger(
            valkey.url, {"t": QuotaConfig(units=1, window_s=window)}, key_prefix=prefix
        ) as ledger:
            before = await server_time(client)
            await ledger.settle(await ledger.reserve("t", per_unit(1)), Amount(units=1))
            after = await server_time(client)
            [(_, settled_at)] = await client.zrange(f"{prefix}{{t}}:events", 0, -1, withscores=True)
            assert before <= settled_at <= after  # stamped by the server, not this process
            deadline = time.monotonic() + 20 * window
            while True:
                first = await server_time(client)
                counted = (await ledger.snapshot())["t"].window.units
                last = await server_time(client)
                if last - settled_at < window:  # the server's clock says: still in the window
                    assert counted == 1
                    with pytest.raises(QuotaExceeded):
                        await ledger.reserve("t", per_unit(1))
                if first - settled_at >= window:  # ... and now it has passed
                    assert counted == 0
                    break
                assert time.monotonic() < deadline
                await anyio.sleep(0.05)
            await ledger.reserve("t", per_unit(1))
    finally:
        await client.aclose()


# ---------------------------------------------------------------------- the pipeline


async def test_concurrent_calls_share_round_trips(valkey: LocalValkey) -> None:
    async with RedisLedger(valkey.url, key_prefix=fresh_prefix()) as ledger:
        pipeline = ledger._pipeline
        assert pipeline is not None
        async with anyio.create_task_group() as tg:
            for _ in range(200):
                tg.start_soon(ledger.reserve, "t", per_unit(1))
        assert (await ledger.snapshot())["t"].open_reservations == 200
        assert pipeline.calls >= 200 and pipeline.batches < pipeline.calls / 4


async def test_scripts_the_server_lost_are_loaded_again(valkey: LocalValkey) -> None:
    client = Redis.from_url(valkey.url)
    try:
        async with RedisLedger(valkey.url, key_prefix=fresh_prefix()) as ledger:
            first = await ledger.reserve("t", per_unit(1))
            await client.script_flush()
            await ledger.settle(first, Amount(units=1))
            await ledger.settle(await ledger.reserve("t", per_unit(2)), Amount(units=2))
            assert (await ledger.snapshot())["t"].settled.units == 3
    finally:
        await client.aclose()
