"""``howhard serve --ray``: two gateway replicas on a local Ray cluster on 127.0.0.1.

One cluster per module (``python -m howhard serve --ray``, a scripted upstream for speed). Every
request goes through ``Traffic.ask``, which records the replica that answered
(``x-howhard-replica``) and the budget it granted, so the budget check covers everything each
replica ever served.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import anyio
import httpx
import pytest

from howhard.deploy.ray import REPLICA_HEADER
from tests.integration.conftest import session_members
from tests.serve.conftest import RunningGateway, ray_gateway_process, stop

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

AVERAGE_BUDGET = 2.5
CONFIG = f"""
[backends.scripted]
factory = "tests.serve.backends:make"
options = {{ slow_s = 0.5 }}

[models.m]
backend = "scripted"
policy = "uniform"
average_budget = {AVERAGE_BUDGET}
max_budget = 4
batching = {{ max_batch_size = 4, max_wait_s = 0.005 }}

[deployment]
replicas = 2
cpus_per_replica = 0.5
num_cpus = 2
max_ongoing_requests = 4
"""


@dataclass
class Traffic:
    """Asks the Ray gateway and remembers which replica granted which budget."""

    gateway: RunningGateway
    budgets: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    async def ask(self, client: httpx.AsyncClient, prompt: str) -> httpx.Response:
        response = await client.post(
            self.gateway.base_url + "/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": prompt}]},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        self.budgets[response.headers[REPLICA_HEADER]].append(response.json()["howhard"]["budget"])
        return response

    async def burst(self, prompts: list[str]) -> list[httpx.Response]:
        """All ``prompts`` at once."""
        responses: list[httpx.Response | None] = [None] * len(prompts)
        async with httpx.AsyncClient() as client:

            async def one(i: int) -> None:
                responses[i] = await self.ask(client, prompts[i])

            async with anyio.create_task_group() as tg:
                for i in range(len(prompts)):
                    tg.start_soon(one, i)
        return [r for r in responses if r is not None]


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traffic]:
    tmp_path = tmp_path_factory.mktemp("ray")
    with ray_gateway_process(CONFIG, tmp_path, replicas="2 replicas") as gateway:
        yield Traffic(gateway)


async def test_both_replicas_answer(traffic: Traffic) -> None:
    # Each replica takes at most 4 requests at once and each is held 0.5 s, so 8 at once need
    # both replicas.
    responses = await traffic.burst([f"SLOW What is {i} * 7?" for i in range(8)])
    assert [r.json()["choices"][0]["message"]["content"] for r in responses] == [
        str(i * 7) for i in range(8)
    ]
    assert len({r.headers[REPLICA_HEADER] for r in responses}) == 2


async def test_each_replica_keeps_the_average_budget_exact(traffic: Traffic) -> None:
    # Uneven traffic: bursts of different sizes and single requests, routed by Ray.
    await traffic.burst([f"SLOW What is {i} * 3?" for i in range(7)])
    async with httpx.AsyncClient() as client:
        for i in range(5):
            await traffic.ask(client, f"What is {i} * 5?")
    await traffic.burst([f"What is {i} * 11?" for i in range(3)])
    counts = Counter({replica: len(b) for replica, b in traffic.budgets.items()})
    assert len(counts) == 2 and sum(counts.values()) >= 7 + 5 + 3
    # Each replica's carry makes its own long-run average exact: after n requests it has
    # granted floor(B * n) units (a uniform policy spends every unit it is given), whatever
    # share of the traffic Ray sent it; the overall average is then within one unit per replica.
    for replica, budgets in traffic.budgets.items():
        assert sum(budgets) == math.floor(AVERAGE_BUDGET * len(budgets)), replica
    total = sum(counts.values())
    spent = sum(sum(b) for b in traffic.budgets.values())
    assert AVERAGE_BUDGET * total - len(counts) < spent <= AVERAGE_BUDGET * total


def test_sigterm_deletes_the_replicas_and_stops_the_cluster(traffic: Traffic) -> None:
    gateway = traffic.gateway
    assert stop(gateway.process, timeout_s=120, group=False) == 0, gateway.tail()
    log = gateway.log.read_text(errors="replace")
    assert "howhard serve: stopped after draining" in log
    assert "Deleting app ['howhard']" in log
    # The local cluster it started (GCS, raylet, the replicas' workers) is gone with it.
    deadline = time.monotonic() + 30
    while session_members(gateway.process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)  # polling for processes to exit, not timing the test
    assert session_members(gateway.process.pid) == []
