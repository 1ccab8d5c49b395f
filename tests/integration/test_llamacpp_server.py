"""OpenAIBackend against llama.cpp's OpenAI-compatible server (xllamacpp), one CPU thread."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from howhard.backends import Backend, OpenAIBackend
from howhard.testing import BackendContract
from howhard.types import GenerationParams
from tests.integration.conftest import Server
from tests.integration.end_to_end import answer_arithmetic

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

QUESTION = "What is 7 + 8?"


@pytest.fixture(scope="module")
async def backend(llamacpp_server: Server) -> AsyncIterator[OpenAIBackend]:
    async with OpenAIBackend(
        base_url=llamacpp_server.base_url, model=llamacpp_server.model
    ) as backend:
        yield backend


async def test_n_samples_come_back_from_one_call(backend: OpenAIBackend) -> None:
    generation = await backend.generate(
        QUESTION, n=3, params=GenerationParams(max_tokens=10, logprobs=True)
    )
    assert len(generation.completions) == 3
    for completion in generation.completions:
        assert completion.logprobs is not None and len(completion.logprobs) == completion.tokens
        assert 1 <= completion.tokens <= 10


async def test_usage_for_n_samples_is_corrected(backend: OpenAIBackend) -> None:
    # The quirk itself: for n>1 the server's usage counts a single choice.
    raw: Any = await backend._client.chat.completions.create(
        model=backend.model,
        messages=[{"role": "user", "content": QUESTION}],
        n=3,
        max_tokens=10,
        logprobs=True,
        top_logprobs=1,
    )
    per_choice = [len(c.logprobs.content) for c in raw.choices]
    assert raw.usage.completion_tokens < sum(per_choice)

    generation = await backend.generate(QUESTION, n=3, params=GenerationParams(max_tokens=10))
    assert generation.completion_tokens == sum(c.tokens for c in generation.completions)
    assert generation.completion_tokens >= 3 * 1
    assert all(c.logprobs is None for c in generation.completions), "not asked for"
    # All three samples hit the 10-token cap or stopped; either way each is counted.
    assert all(1 <= c.tokens <= 10 for c in generation.completions)


async def test_end_to_end_best_of_k_with_a_math_verifier(backend: OpenAIBackend) -> None:
    await answer_arithmetic(backend)


class TestLlamaCppServerConformance(BackendContract):
    """OpenAIBackend on llama.cpp's server passes the backend conformance suite."""

    @pytest.fixture(autouse=True)
    def _server(self, llamacpp_server: Server) -> None:
        self.server = llamacpp_server

    def make_backend(self) -> Backend:
        return OpenAIBackend(base_url=self.server.base_url, model=self.server.model)
