"""Two Ray Serve replicas sharing one tenant's quota through a real Valkey server.

``[ledger] kind = "redis"``: each replica is a whole gateway with its own schedulers, and every
reservation goes to the one server, so requests spread over both replicas can never spend more
than the quota; the spend is audited on the server itself. A replica killed outright (SIGKILL)
stops renewing its holds, which lapse within the lease TTL and charge nothing, while the other
replica goes on.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import pytest

from howhard.config import QuotaConfig
from howhard.deploy.ray import REPLICA_HEADER
from howhard.ledger import LeaseAudit, RedisLedger
from howhard.testing.valkey import LocalValkey
from tests.integration.conftest import session_members
from tests.serve.conftest import ray_gateway_process

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

PREFIX = "ray-replicas:"
PROMPT = "SLOW What is 2 * 3?"
CONFIG = """
[backends.scripted]
factory = "tests.serve.backends:make"
options = {{ slow_s = {slow_s} }}

[models.m]
backend = "scripted"
policy = "uniform"
average_budget = 2
max_budget = 2

[tenants.team]
quota = {{ units = {units} }}

[ledger]
kind = "redis"
url = "{url}"
key_prefix = "{prefix}"
lease_ttl_s = {lease_ttl_s}

[deployment]
replicas = 2
cpus_per_replica = 0.5
num_cpus = 2
max_ongoing_requests = 4
"""


async def test_replicas_on_ray_share_one_quota_exactly(valkey: LocalValkey, tmp_path: Path) -> None:
    config = CONFIG.format(url=valkey.url, prefix=PREFIX, slow_s=0.5, units=20, lease_ttl_s=30)
    with ray_gateway_process(config, tmp_path, replicas="2 replicas", tenants=["team"]) as gateway:
        answered: Counter[str] = Counter()
        refused = 0
        async with httpx.AsyncClient(timeout=60) as client:

            async def ask() -> None:
                nonlocal refused
                response = await client.post(
                    gateway.base_url + "/chat/completions",
                    json={
                        "model": "m",
                        "messages": [{"role": "user", "content": "SLOW What is 2 * 3?"}],
                    },
                    headers={"authorization": f"Bearer {gateway.keys['team']}"},
                )
                if response.status_code == 200:
                    answered[response.headers[REPLICA_HEADER]] += 1
                else:
                    assert response.status_code == 429, response.text
                    assert response.json()["error"]["code"] == "quota_exceeded"
                    refused += 1

            async with anyio.create_task_group() as tg:
                for _ in range(30):
                    tg.start_soon(ask)
        # 20 units at 2 per request: exactly 10 answered, by both replicas together.
        assert sum(answered.values()) == 10 and refused == 20
        assert len(answered) == 2
    # Audited on the server: the whole quota settled, nothing held, no lease left open.
    async with RedisLedger(
        valkey.url, {"team": QuotaConfig(units=20)}, key_prefix=PREFIX
    ) as ledger:
        spend = (await ledger.snapshot())["team"]
        audit = await ledger.audit("team")
    assert spend.settled.units == 20
    assert spend.reserved.units == 0 and spend.open_reservations == 0
    assert audit.peak_units == 20  # never more held at any moment than the quota
    assert audit.open_leases == 0


async def _until(condition: Callable[[LeaseAudit], bool], ledger: RedisLedger) -> None:
    """Wait (at most 30 s) until the server's books for tenant 'team' meet ``condition``."""
    with anyio.fail_after(30):
        while not condition(await ledger.audit("team")):  # noqa: ASYNC110 - another process's books
            await anyio.sleep(0.05)


def _replica_pids(session: int) -> list[int]:
    """The Ray Serve replica processes of the gateway's session."""
    pids = []
    for pid in session_members(session):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"ServeReplica:howhard:gateway" in command:
            pids.append(pid)
    return pids


async def test_a_killed_replicas_holds_expire_and_the_other_replica_goes_on(
    valkey: LocalValkey, tmp_path: Path
) -> None:
    prefix = "ray-kill:"
    config = CONFIG.format(url=valkey.url, prefix=prefix, slow_s=5.0, units=100, lease_ttl_s=2)
    quotas = {"team": QuotaConfig(units=100)}
    with ray_gateway_process(config, tmp_path, replicas="2 replicas", tenants=["team"]) as gateway:
        headers = {"authorization": f"Bearer {gateway.keys['team']}"}
        statuses: list[int] = []
        async with (
            httpx.AsyncClient(timeout=60) as client,
            RedisLedger(valkey.url, quotas, key_prefix=prefix) as ledger,
        ):

            async def ask(prompt: str) -> None:
                response = await client.post(
                    gateway.base_url + "/chat/completions",
                    json={"model": "m", "messages": [{"role": "user", "content": prompt}]},
                    headers=headers,
                )
                statuses.append(response.status_code)

            async with anyio.create_task_group() as tg:
                for _ in range(8):  # four on each replica, each held 5 s
                    tg.start_soon(ask, PROMPT)
                # Once all eight hold their units on the server, kill one replica outright.
                await _until(lambda audit: audit.open_leases == 8, ledger)
                victim = _replica_pids(gateway.process.pid)[0]
                os.kill(victim, signal.SIGKILL)
            # The killed replica's four requests fail; the other's four are answered.
            assert sorted(statuses).count(200) == 4, statuses
            # Its holds lapse within the lease TTL (nobody renews them), charging nothing.
            await _until(lambda audit: audit.open_leases == 0, ledger)
            audit = await ledger.audit("team")
            spend = (await ledger.snapshot())["team"]
            assert audit.expired == 4
            assert spend.settled.units == 4 * 2 and spend.reserved.units == 0
            # The surviving replica (and the one Ray starts in its place) keep answering.
            await ask("What is 2 * 3?")
            assert statuses[-1] == 200
