"""Quota stores side by side: reserve + settle pairs per second and their latency.

For each store — ``InMemoryLedger`` and ``RedisLedger`` on one local Valkey server — two
measurements, in one run:

* **closed loop** — ``C`` callers (``--concurrency``, several values) each run reserve + settle
  pairs back to back on one tenant for ``--seconds``; pairs/s is completed pairs over wall time,
  p50/p99 the pair latency (reserve sent → settle answered), queueing included.
* **open loop** — pairs started at a fixed offered rate (``--rate``, default the 5,000 pairs/s
  target), each as its own task: pairs/s achieved and p50/p99 latency at that rate.

The tenant has a windowed quota far above what the run spends (so every reserve is granted and
every settle records a window event, the store's full path). ``RedisLedger`` talks to a
``valkey-server`` started here on a free loopback port (``howhard.testing.valkey``; the ``dev``
extra ships it) unless ``--url`` names a running server. On a 2-core machine the server and
this process share the cores, so the figures include that contention; the target (docs:
DESIGN.md) is >= 5,000 pairs/s with p99 <= 5 ms. Other load moves the numbers: compare rows of
one run.

Run: ``python benchmarks/bench_ledger.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable

import anyio

from howhard import QuotaConfig
from howhard.ledger import Amount, InMemoryLedger, Ledger, RedisLedger
from howhard.testing.ledger import per_unit
from howhard.testing.valkey import LocalValkey

TARGET_PAIRS = 5_000
TARGET_P99_MS = 5.0
QUOTA = QuotaConfig(units=10**12, tokens=10**15, window_s=3600.0)
HOLD = per_unit(4, tokens=64, cost_micros=50)
ACTUAL = Amount(units=4, prompt_tokens=0, completion_tokens=100, cost_micros=120)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


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


def row(name: str, rate: float, latencies: list[float]) -> str:
    p50, p99 = percentile(latencies, 0.5) * 1e3, percentile(latencies, 0.99) * 1e3
    return f"{name:<34} {rate:>10,.0f} {p50:>9.3f} {p99:>9.3f}"


async def measure(
    name: str,
    open_store: Callable[[], contextlib.AbstractAsyncContextManager[Ledger]],
    args: argparse.Namespace,
) -> dict[str, tuple[float, float]]:
    results = {}
    async with open_store() as ledger:
        await closed_loop(ledger, 4, 0.3)  # warm up: connections, scripts, caches
        for concurrency in args.concurrency:
            rate, latencies = await closed_loop(ledger, concurrency, args.seconds)
            print(row(f"{name}, closed loop C={concurrency}", rate, latencies), flush=True)
            results[f"C={concurrency}"] = (rate, percentile(latencies, 0.99) * 1e3)
        rate, latencies = await open_loop(ledger, args.rate, args.seconds)
        print(row(f"{name}, open loop {args.rate:,.0f}/s", rate, latencies), flush=True)
        results["open"] = (rate, percentile(latencies, 0.99) * 1e3)
    return results


async def run(args: argparse.Namespace, url: str) -> None:
    print(f"{'store, load':<34} {'pairs/s':>10} {'p50 ms':>9} {'p99 ms':>9}")
    print("-" * 65)

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

    await measure("in-memory", memory, args)
    results = await measure("redis (valkey, local)", shared, args)
    best = max(rate for rate, _ in results.values())
    at_rate = results["open"]
    print(
        f"\nRedisLedger: best {best:,.0f} pairs/s (target >= {TARGET_PAIRS:,}); at an offered "
        f"{args.rate:,.0f}/s: {at_rate[0]:,.0f} pairs/s, p99 {at_rate[1]:.2f} ms "
        f"(target <= {TARGET_P99_MS} ms)"
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
