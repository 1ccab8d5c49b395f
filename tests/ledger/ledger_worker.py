"""A separate OS process sharing a RedisLedger with others (run by test_redis_server.py).

``python -m tests.ledger.ledger_worker submit URL PREFIX QUOTA_JSON N``: a Scheduler on a
scripted backend, ``N`` concurrent submitters on tenant ``t``; waits for a line on stdin (so all
workers start together), then prints one JSON line: what its results used and how many were
refused.

``python -m tests.ledger.ledger_worker hold URL PREFIX K TTL``: reserves ``K`` one-unit
leases of a ``K``-unit quota, settles the first, prints ``ready`` and then keeps its leases
renewed until killed.
"""

from __future__ import annotations

import json
import sys

import anyio

from howhard import QuotaConfig, Scheduler
from howhard.backends import ScriptedBackend
from howhard.errors import QuotaExceeded
from howhard.ledger import Amount, RedisLedger
from howhard.testing.ledger import per_unit
from howhard.types import Usage


async def submit(url: str, prefix: str, quota: QuotaConfig, n: int) -> None:
    backend = ScriptedBackend(latency_s=0.001, seed=n)
    usage, refused = Usage(), 0
    async with (
        RedisLedger(url, {"t": quota}, key_prefix=prefix) as ledger,
        Scheduler(
            backend=backend,
            ledger=ledger,
            average_budget=2.0,
            max_budget=2,
            min_budget=2,
            max_concurrency=64,
        ) as scheduler,
    ):

        async def one(i: int) -> None:
            nonlocal usage, refused
            try:
                result = await scheduler.submit(f"What is {i} + {i}?", tenant="t")
            except QuotaExceeded:
                refused += 1
            else:
                usage = usage + result.usage

        await anyio.to_thread.run_sync(sys.stdin.readline)
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one, i)
    print(
        json.dumps(
            {
                "units": usage.units,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "refused": refused,
            }
        ),
        flush=True,
    )


async def hold(url: str, prefix: str, k: int, ttl: float) -> None:
    quotas = {"t": QuotaConfig(units=k)}
    async with RedisLedger(url, quotas, key_prefix=prefix, lease_ttl_s=ttl) as ledger:
        leases = [await ledger.reserve("t", per_unit(1)) for _ in range(k)]
        await ledger.settle(leases[0], Amount(units=1, completion_tokens=3))
        print("ready", flush=True)
        await anyio.sleep_forever()


def main() -> None:
    mode, url, prefix, *rest = sys.argv[1:]
    if mode == "submit":
        quota = QuotaConfig.model_validate_json(rest[0])
        anyio.run(submit, url, prefix, quota, int(rest[1]))
    else:
        anyio.run(hold, url, prefix, int(rest[0]), float(rest[1]))


if __name__ == "__main__":
    main()
