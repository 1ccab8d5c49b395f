"""OpenAIBackend against vLLM's OpenAI-compatible server on the default model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from howhard.backends import OpenAIBackend
from howhard.types import GenerationParams
from tests.integration.conftest import Server
from tests.integration.end_to_end import answer_arithmetic

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

QUESTION = "What is 7 + 8?"


@pytest.fixture(scope="module")
async def backend(vllm_server: Server) -> AsyncIterator[OpenAIBackend]:
    async with OpenAIBackend(base_url=vllm_server.base_url, model=vllm_server.model) as backend:
        yield backend


async def test_chat_with_n_samples_and_logprobs(backend: OpenAIBackend) -> None:
    params = GenerationParams(max_tokens=12, temperature=0.7, logprobs=True)
    generation = await backend.generate(QUESTION, n=4, params=params)
    assert len(generation.completions) == 4
    assert generation.prompt_tokens > 20  # the chat template's system prompt is included
    for completion in generation.completions:
        assert completion.logprobs is not None
        assert 1 <= completion.tokens <= 12
        assert all(lp <= 0 for lp in completion.logprobs)
        assert completion.finish_reason in {"stop", "length"}


async def test_token_counts_agree_with_the_servers_usage(vllm_server: Server) -> None:
    import httpx2

    bodies: list[dict[str, Any]] = []

    async def capture(response: httpx2.Response) -> None:
        await response.aread()
        bodies.append(response.json())

    client = httpx2.AsyncClient(event_hooks={"response": [capture]})
    async with OpenAIBackend(
        base_url=vllm_server.base_url, model=vllm_server.model, http_client=client
    ) as backend:
        generation = await backend.generate(QUESTION, n=3, params=GenerationParams(max_tokens=40))
    (body,) = bodies
    # vLLM's own usage is right for n>1, so the per-choice counts must add up to it exactly.
    assert generation.completion_tokens == body["usage"]["completion_tokens"]
    assert generation.prompt_tokens == body["usage"]["prompt_tokens"]


async def test_the_completions_api_with_n_samples(vllm_server: Server) -> None:
    async with OpenAIBackend(
        base_url=vllm_server.base_url, model=vllm_server.model, api="completions"
    ) as backend:
        generation = await backend.generate(
            "2 + 3 =", n=2, params=GenerationParams(max_tokens=6, logprobs=True)
        )
    assert len(generation.completions) == 2
    for completion in generation.completions:
        assert completion.logprobs is not None and len(completion.logprobs) == completion.tokens
    assert generation.prompt_tokens < 10  # raw text, no chat template


async def test_end_to_end_best_of_k_with_a_math_verifier(backend: OpenAIBackend) -> None:
    await answer_arithmetic(backend)
