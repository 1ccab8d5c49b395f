"""``howhard serve --ray`` in front of a real vLLM OpenAI-compatible server.

Two gateway replicas on a local Ray cluster, both generating through ``OpenAIBackend`` on vLLM's
server for the default model: the deployment the README draws, with the real upstream.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from howhard.deploy.ray import REPLICA_HEADER
from tests.integration.conftest import Server
from tests.serve.conftest import RunningGateway, ray_gateway_process

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture(scope="module")
def ray_gateway(
    vllm_server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    config = f"""
[backends.vllm]
kind = "openai"
base_url = "{vllm_server.base_url}"
model = "{vllm_server.model}"

[models.smollm2]
backend = "vllm"
policy = "uniform"
average_budget = 2
max_budget = 4
max_tokens = 16

[deployment]
replicas = 2
cpus_per_replica = 0.5
num_cpus = 2
max_ongoing_requests = 1
"""
    tmp_path: Path = tmp_path_factory.mktemp("ray-vllm")
    with ray_gateway_process(
        config, tmp_path, replicas="2 replicas", ready_timeout_s=240
    ) as gateway:
        yield gateway


async def test_two_replicas_generate_through_the_vllm_server(ray_gateway: RunningGateway) -> None:
    questions = [f"What is {a} + {a + 1}?" for a in range(4)]
    responses: list[httpx.Response] = []
    async with httpx.AsyncClient(timeout=180) as client:

        async def ask(question: str) -> None:
            body = {"model": "smollm2", "messages": [{"role": "user", "content": question}]}
            responses.append(
                await client.post(ray_gateway.base_url + "/chat/completions", json=body)
            )

        # One request at a time per replica (max_ongoing_requests = 1): four at once use both.
        async with anyio.create_task_group() as tg:
            for question in questions:
                tg.start_soon(ask, question)
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    assert len({r.headers[REPLICA_HEADER] for r in responses}) == 2
    for response in responses:
        body = response.json()
        assert body["choices"][0]["message"]["content"].strip()
        assert body["howhard"]["budget"] == 2 and body["howhard"]["samples"] == 2
        # Tokens the vLLM server generated, counted and charged by the replica.
        assert 2 <= body["usage"]["completion_tokens"] <= 2 * 16
        assert body["usage"]["prompt_tokens"] > 20  # the chat template's system prompt
