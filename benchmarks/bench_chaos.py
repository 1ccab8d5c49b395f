"""Chaos at scale: 100,000 requests through hostile plug-ins, with the promises checked.

Runs :func:`howhard.testing.chaos.run_chaos`: a backend, scorer and policy that misbehave on
purpose (every fault in ``howhard.testing.chaos``: each error type, the scheduler's own
included; stray cancellations; hangs that ignore cancellation; NaN, negative, fractional,
string and absurd usage; too many completions …), random caller cancellations, deadlines on
every request and tenants with tight quotas, checked by an audited ledger. It prints the
requests, the faults by kind, the outcomes, and the figures that must be zero: lost,
duplicated, untyped errors, false ``SchedulerClosed``, overspend, double closes, leaked
reservations, hangs (resolved later than deadline + slack).

Run: ``python benchmarks/bench_chaos.py`` (``--requests``, ``--seed``, ``--fault-rate``).
CI runs the same at 10,000 requests (``tests/chaos/test_chaos_run.py``).
"""

from __future__ import annotations

import argparse
import logging

import anyio
import structlog

from howhard.testing.chaos import run_chaos


def main() -> None:
    """Parse the arguments, run the chaos, print the report; exit 1 if a promise broke."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fault-rate", type=float, default=0.3)
    args = parser.parse_args()
    # Hostile plug-ins make the scheduler log a warning per fault: keep the report readable.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))

    async def run() -> bool:
        report = await run_chaos(args.requests, seed=args.seed, fault_rate=args.fault_rate)
        for line in report.lines():
            print(line)
        print("every promise held" if report.ok else "A PROMISE BROKE")
        return report.ok

    if not anyio.run(run):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
