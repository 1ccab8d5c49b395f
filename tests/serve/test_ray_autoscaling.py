"""``[deployment] autoscaling`` on a local Ray cluster: load above the target adds a replica.

One replica to start with, a target of one request in flight per replica; six clients keep six
slow requests in flight until a second replica answers (Ray's autoscaler decides every ~10 s).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import anyio
import httpx
import pytest

from howhard.deploy.ray import REPLICA_HEADER
from tests.serve.conftest import ray_gateway_process

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CONFIG = """
[backends.scripted]
factory = "tests.serve.backends:make"
options = { slow_s = 1.0 }

[models.m]
backend = "scripted"
policy = "uniform"

[deployment]
cpus_per_replica = 0.5
num_cpus = 2

[deployment.autoscaling]
min_replicas = 1
max_replicas = 2
target_ongoing_requests = 1
upscale_delay_s = 0
"""


async def test_load_above_the_target_adds_a_replica(tmp_path: Path) -> None:
    with ray_gateway_process(CONFIG, tmp_path, replicas="1-2 replicas (autoscaling)") as gateway:
        replicas: Counter[str] = Counter()
        deadline = time.monotonic() + 90  # the autoscaler's own period is ~10 s
        async with httpx.AsyncClient(timeout=60) as client:

            async def keep_asking() -> None:
                while len(replicas) < 2 and time.monotonic() < deadline:
                    response = await client.post(
                        gateway.base_url + "/chat/completions",
                        json={
                            "model": "m",
                            "messages": [{"role": "user", "content": "SLOW What is 2 * 2?"}],
                        },
                    )
                    assert response.status_code == 200, response.text
                    replicas[response.headers[REPLICA_HEADER]] += 1

            async with anyio.create_task_group() as tg:
                for _ in range(6):
                    tg.start_soon(keep_asking)
        assert len(replicas) == 2, gateway.tail()
        assert "Upscaling Deployment(name='gateway', app='howhard') from 1 to 2" in (
            gateway.log.read_text(errors="replace")
        )
