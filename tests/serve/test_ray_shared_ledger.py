"""Two Ray Serve replicas sharing one tenant's quota through a real Valkey server.

``[ledger] kind = "redis"``: each replica is a whole gateway with its own schedulers, and every
reservation goes to the one server, so requests spread over both replicas can never spend more
than the quota; the spend is audited on the server itself.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import anyio
import httpx
import pytest

from howhard.config import QuotaConfig
from howhard.deploy.ray import REPLICA_HEADER
from howhard.ledger import RedisLedger
from howhard.testing.valkey import LocalValkey
from tests.serve.conftest import ray_gateway_process

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

PREFIX = "ray-replicas:"
PROMPT = "SLOW What is 2 * 3?"
CONFIG = """
[backends.scripted]
factory = "tests.serve.backends:make"
options = {{ slow_s = 0.5 }}

[models.m]
backend = "scripted"
policy = "uniform"
average_budget = 2
max_budget = 2

[tenants.team]
quota = {{ units = 20 }}

[ledger]
kind = "redis"
url = "{url}"
key_prefix = "{prefix}"

[deployment]
replicas = 2
cpus_per_replica = 0.5
num_cpus = 2
max_ongoing_requests = 4
"""


async def test_replicas_on_ray_share_one_quota_exactly(valkey: LocalValkey, tmp_path: Path) -> None:
    config = CONFIG.format(url=valkey.url, prefix=PREFIX)
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
    assert spend.settled.units == 20
    assert spend.reserved.units == 0 and spend.open_reservations == 0
