"""Quota stores side by side: reserve + settle pairs per second and their latency.

For each store — ``InMemoryLedger`` and ``RedisLedger`` on one local Valkey server — two
measurements, in one run:

* **closed loop** — ``C`` callers (``--concurrency``, several values) each run reserve + settle
  pairs back to back on one tenant for ``--seconds``; pairs/s is completed pairs over wall time,
  p50/p99 the pair latency (reserve sent → settle answered), queueing included.
* **open loop** — pairs started at a fixed offered rate (``--rate``, default the 5,000 pairs/s
  target), each as its own task: pairs/s achieved and p50/p99 latency at that rate.

Each row also gives the CPU time per pair of this process (``client us``) and, for Redis, of the
server (``server us``, from its ``INFO cpu``), and ``CPU wait``: the share of the wall time this
process was ready to run but waiting for a core (Linux ``/proc/self/schedstat``). Client and
server are one thread each, so ``1e6 / max(client us, server us)`` is the rate they would
sustain with a core each (``pairs/CPU-s``): the fair figure on a machine shared with other
jobs, printed beside the wall-clock one.

The tenant has a windowed quota far above what the run spends (so every reserve is granted and
every settle records a window event, the store's full path). ``RedisLedger`` talks to a
``valkey-server`` started here on a free loopback port (``howhard.testing.valkey``: append-only
file, fsync every second, Valkey's default; the ``dev`` extra ships it) unless ``--url`` names
a running server. On a 2-core machine the server and this process share the cores; the target
(DESIGN.md) is >= 5,000 pairs/s with p99 <= 5 ms. Other load moves the numbers: compare rows
of one run.

Run: ``python benchmarks/bench_ledger.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
from bench_scheduler import cpu_wait_s, percentile  # run as a script: benchmarks/ is on the path
from redis.asyncio import Redis

from howhard import QuotaConfig
from howhard.ledger import Amount, InMemoryLedger, Ledger, RedisLedger
from howhard.testing.ledger import per_unit
from howhard.testing.valkey import LocalValkey

TARGET_PAIRS = 5_000
TARGET_P99_MS = 5.0
QUOTA = QuotaConfig(units=10**12, tokens=10**15, window_s=3600.0)
HOLD = per_unit(4, tokens=64, cost_micros=50)
ACTUAL = Amount(units=4, prompt_tokens=0, completion_tokens=100, cost_micros=120)


async def pair(ledger: Ledger, latencies: list[float]) -> None:
    started = time.perf_counter()
    reservation = await ledger.reserve("bench", HOLD)
    await ledger.settle(reservation, ACTUAL)
    latencies.append(time.perf_counter() - started)


async def closed_loop(
    ledger: Ledger, concurrency: int, seconds: float
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def caller() -> None:
        while time.perf_counter() < stop:
            await pair(ledger, latencies)

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(caller)
    return len(latencies) / (time.perf_counter() - started), latencies


async def open_loop(ledger: Ledger, rate: float, seconds: float) -> tuple[float, list[float]]:
    latencies: list[float] = []
    total = int(rate * seconds)
    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i in range(total):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await anyio.sleep(delay)
            tg.start_soon(pair, ledger, latencies)
    return len(latencies) / (time.perf_counter() - started), latencies


class Meter:
    """Wall time, this process's CPU time, its CPU wait and the server's CPU time of one run."""

    def __init__(self, server: Redis | None) -> None:
        self.server = server

    async def server_cpu_s(self) -> float | None:
        if self.server is None:
            return None
        info = await self.server.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    async def run(
        self, name: str, measurement: Awaitable[tuple[float, list[float]]]
    ) -> tuple[float, float, float]:
        wall, cpu, wait, server = (
            time.perf_counter(),
            time.process_time(),
            cpu_wait_s(),
            await self.server_cpu_s(),
        )
        rate, latencies = await measurement
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
        waited = cpu_wait_s()
        after = await self.server_cpu_s()
        pairs = len(latencies)
        client_us = cpu / pairs * 1e6
        server_us = None if server is None or after is None else (after - server) / pairs * 1e6
        per_cpu = 1e6 / max(client_us, server_us or 0.0)
        p50, p99 = percentile(latencies, 0.5) * 1e3, percentile(latencies, 0.99) * 1e3
        wait_share = "n/a" if wait is None or waited is None else f"{(waited - wait) / wall:.0%}"
        server_text = "-" if server_us is None else f"{server_us:.0f}"
        print(
            f"{name:<36} {rate:>9,.0f} {p50:>8.3f} {p99:>9.3f} {client_us:>10.0f} "
            f"{server_text:>10} {per_cpu:>11,.0f} {wait_share:>9}",
            flush=True,
        )
        return rate, p99, per_cpu


async def measure(
    name: str,
    open_store: Callable[[], contextlib.AbstractAsyncContextManager[Ledger]],
    meter: Meter,
    args: argparse.Namespace,
) -> dict[str, tuple[float, float, float]]:
    results = {}
    async with open_store() as ledger:
        await closed_loop(ledger, 4, 0.3)  # warm up: connections, scripts, caches
        for concurrency in args.concurrency:
            results[f"C={concurrency}"] = await meter.run(
                f"{name}, closed C={concurrency}", closed_loop(ledger, concurrency, args.seconds)
            )
        results["open"] = await meter.run(
            f"{name}, open {args.rate:,.0f}/s", open_loop(ledger, args.rate, args.seconds)
        )
    return results


async def run(args: argparse.Namespace, url: str) -> None:
    print(
        f"{'store, load':<36} {'pairs/s':>9} {'p50 ms':>8} {'p99 ms':>9} {'client us':>10} "
        f"{'server us':>10} {'pairs/CPU-s':>11} {'CPU wait':>9}"
    )
    print("-" * 110)

    @contextlib.asynccontextmanager
    async def memory() -> AsyncIterator[Ledger]:
        yield InMemoryLedger({"bench": QUOTA})

    @contextlib.asynccontextmanager
    async def shared() -> AsyncIterator[Ledger]:
        prefix = f"bench:{os.getpid()}:{time.time_ns()}:"
        async with RedisLedger(
            url, {"bench": QUOTA}, key_prefix=prefix, max_connections=args.connections
        ) as ledger:
            yield ledger

    await measure("in-memory", memory, Meter(None), args)
    server = Redis.from_url(url)
    try:
        results = await measure("redis", shared, Meter(server), args)
    finally:
        await server.aclose()
    best = max(rate for rate, _, _ in results.values())
    best_cpu = max(per_cpu for _, _, per_cpu in results.values())
    at_rate = results["open"]
    print(
        f"\nRedisLedger: best {best:,.0f} pairs/s wall-clock, {best_cpu:,.0f} pairs per CPU-second "
        f"of the busier process (target >= {TARGET_PAIRS:,}); at an offered {args.rate:,.0f}/s: "
        f"{at_rate[0]:,.0f} pairs/s, p99 {at_rate[1]:.2f} ms (target <= {TARGET_P99_MS} ms)"
    )
    print(f"load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start a local valkey-server)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each measurement")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 8, 32], help="closed-loop callers"
    )
    parser.add_argument("--rate", type=float, default=TARGET_PAIRS, help="open-loop pairs/s")
    parser.add_argument("--connections", type=int, default=64, help="RedisLedger pool size")
    args = parser.parse_args()
    if args.url:
        anyio.run(run, args, args.url)
        return
    with LocalValkey() as server:
        print(f"valkey-server {server.binary} on {server.url}")
        anyio.run(run, args, server.url)


if __name__ == "__main__":
    main()
