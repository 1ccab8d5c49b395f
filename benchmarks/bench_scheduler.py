"""Scheduler overhead with an instant backend: requests/s through submit and added latency.

Two measurements per batch size, printed side by side:

* **throughput** — closed loop: ``2 * batch`` callers each submit back to back, so batches fill
  without waiting; requests/s is completed submits over wall time, and also over this process's
  CPU time (the event loop is one thread, so req/CPU-s is what one idle core would sustain —
  the fair figure on a machine shared with other jobs; both are printed). ``CPU wait`` is the
  share of that wall time the process was ready to run but waiting for a core (Linux
  ``/proc/self/schedstat``; ``n/a`` elsewhere): when wall and CPU rates differ, it tells other
  jobs on the machine (high CPU wait) from the scheduler sitting idle (low CPU wait).
  It is printed for both phases: in the latency phase, time spent waiting for a core lands
  directly in the tail (p99).
* **added latency** — open loop at a fixed offered rate (default 2,000 req/s, below capacity):
  submit-to-result time of each request. With an instant backend all of it is scheduler overhead
  plus the batch wait, so the target is ``p99 <= max_wait + 2 ms``.

The backend is ``ScriptedBackend`` with zero latency and each request gets 1 unit. The default
procedure (``--procedure first``) returns the first sample untouched, so the figures are the
scheduler's own overhead (queue, batcher, policy, ledger, dispatch, retries wrapper, result);
``--procedure self-consistency`` adds answer extraction and voting on top.
Run: ``python benchmarks/bench_scheduler.py`` (``--help`` for sizes). Other load on the machine
moves the numbers; compare rows of one run, not runs on different days.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import anyio
import structlog

from howhard import BatchingConfig, Candidate, Request, Scheduler
from howhard.backends import ScriptedBackend
from howhard.procedures import Context, Outcome, PlannedCall, Procedure, SelfConsistency

TARGET_RPS = 20_000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class FirstSample:
    """The cheapest procedure: one call, first sample as the answer (no scoring)."""

    def plan(self, budget: int) -> list[PlannedCall]:
        return [PlannedCall(None, budget)] if budget else []

    async def run(self, request: Request, budget: int, context: Context) -> Outcome:
        generation = await context.generate(request.prompt, n=budget)
        chosen = Candidate(completion=generation.completions[0], score=0.0)
        return Outcome(answer=chosen.completion.text, chosen=chosen, candidates=(chosen,))


PROCEDURE = "first"


def cpu_wait_s() -> float | None:
    """Seconds this process has been runnable but waiting for a core (Linux only)."""
    try:
        with open("/proc/self/schedstat") as stats:
            return int(stats.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def scheduler(batch: int, max_wait_s: float) -> Scheduler:
    procedure: Procedure = FirstSample() if PROCEDURE == "first" else SelfConsistency()
    return Scheduler(
        backend=ScriptedBackend(lambda prompt, n, params: ["The answer is 4."] * n, record=False),
        procedure=procedure,
        average_budget=1,
        batching=BatchingConfig(max_batch_size=batch, max_wait_s=max_wait_s),
        max_queue=8192,
        max_concurrency=64,
    )


def share(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{fraction:.0%}"


async def throughput(
    batch: int, requests: int, max_wait_s: float
) -> tuple[float, float, float | None]:
    callers = max(2 * batch, 8)
    per_caller = max(1, requests // callers)
    async with scheduler(batch, max_wait_s) as s:
        await s.submit("warm up")

        async def caller(k: int) -> None:
            for i in range(per_caller):
                await s.submit(f"question {k}-{i}")

        start, cpu_start, wait_start = time.perf_counter(), time.process_time(), cpu_wait_s()
        async with anyio.create_task_group() as tg:
            for k in range(callers):
                tg.start_soon(caller, k)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        wait_end = cpu_wait_s()
    done = callers * per_caller
    waited = None if wait_start is None or wait_end is None else (wait_end - wait_start) / elapsed
    return done / elapsed, done / cpu, waited


async def latency(
    batch: int, requests: int, rate: float, max_wait_s: float
) -> tuple[list[float], float | None]:
    latencies: list[float] = []
    tick = 0.001
    async with scheduler(batch, max_wait_s) as s:
        await s.submit("warm up")

        async def one(i: int) -> None:
            start = time.perf_counter()
            await s.submit(f"question {i}")
            latencies.append(time.perf_counter() - start)

        wait_start = cpu_wait_s()
        async with anyio.create_task_group() as tg:
            start = time.perf_counter()
            sent = 0
            while sent < requests:
                # Open loop: release however many arrivals are due by now, then wait a tick.
                due = min(requests, int((time.perf_counter() - start) * rate) + 1)
                for i in range(sent, due):
                    tg.start_soon(one, i)
                sent = due
                await anyio.sleep(tick)
        elapsed, wait_end = time.perf_counter() - start, cpu_wait_s()
    waited = None if wait_start is None or wait_end is None else (wait_end - wait_start) / elapsed
    return latencies, waited


async def main(args: argparse.Namespace) -> None:
    max_wait_s = args.max_wait_ms / 1000
    global PROCEDURE
    PROCEDURE = args.procedure
    print(
        f"instant ScriptedBackend, procedure={args.procedure}, max_wait={args.max_wait_ms} ms, "
        f"latency at {args.rate:,.0f} req/s offered"
    )
    header = (
        f"{'batch':>6} {'req/s wall':>11} {'req/CPU-s':>10} {'CPU wait':>9} {'vs target':>10} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'p99 target':>11} {'CPU wait':>9}"
    )
    print(header)
    print("-" * len(header))
    for batch in args.batch_sizes:
        count = args.requests if batch > 1 else args.requests // 4
        rps, cpu_rps, waited = await throughput(batch, count, max_wait_s)
        lat, lat_waited = await latency(batch, args.latency_requests, args.rate, max_wait_s)
        p50, p99 = percentile(lat, 0.50) * 1e3, percentile(lat, 0.99) * 1e3
        print(
            f"{batch:>6} {rps:>11,.0f} {cpu_rps:>10,.0f} {share(waited):>9} "
            f"{rps / TARGET_RPS:>9.2f}x {p50:>8.2f} {p99:>8.2f} {args.max_wait_ms + 2:>8.1f} ms "
            f"{share(lat_waited):>9}"
        )
    print(f"(target: >= {TARGET_RPS:,} req/s at batch 256; p99 <= max_wait + 2 ms)")
    print(f"load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64, 256])
    parser.add_argument("--requests", type=int, default=40_000)
    parser.add_argument("--latency-requests", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=2_000.0)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--procedure", choices=["first", "self-consistency"], default="first")
    anyio.run(main, parser.parse_args())
