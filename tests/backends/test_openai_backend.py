"""OpenAIBackend against in-process OpenAI-compatible apps: n-filling, usage, error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse
from starlette.routing import Route

from howhard.backends import Backend, Encoder, OpenAIBackend
from howhard.errors import (
    BackendError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    RateLimited,
    RetryableError,
)
from howhard.types import GenerationParams
from tests.backends.openai_apps import ScriptedOpenAIServer, ignores_n_server

httpx2 = pytest.importorskip("httpx2")
pytestmark = pytest.mark.anyio

PARAMS = GenerationParams(max_tokens=8)


@asynccontextmanager
async def backend_for(
    server: ScriptedOpenAIServer, **options: object
) -> AsyncIterator[OpenAIBackend]:
    client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=server.app()))
    backend = OpenAIBackend(
        base_url="http://scripted.test/v1", model="scripted", http_client=client, **options
    )
    try:
        yield backend
    finally:
        await backend.aclose()


async def test_it_is_a_backend_and_an_encoder() -> None:
    async with backend_for(ScriptedOpenAIServer()) as backend:
        assert isinstance(backend, Backend) and isinstance(backend, Encoder)
        assert backend.model == "scripted"


async def test_all_samples_come_from_one_call_when_the_server_honours_n() -> None:
    server = ScriptedOpenAIServer()
    async with backend_for(server) as backend:
        generation = await backend.generate("What is 2 + 3?", n=4, params=PARAMS)
    assert len(server.requests) == 1 and server.requests[0]["n"] == 4
    assert [c.tokens for c in generation.completions] == [1, 2, 3, 4]
    assert generation.completion_tokens == 10
    assert generation.prompt_tokens == 5  # the scripted server counts words
    assert all(c.logprobs is None for c in generation.completions), "not asked for"


async def test_missing_samples_are_requested_concurrently_and_counted() -> None:
    server = ignores_n_server()
    async with backend_for(server) as backend:
        generation = await backend.generate("What is 2 + 3?", n=4, params=PARAMS)
    assert len(generation.completions) == 4
    assert [r["n"] for r in server.requests] == [4, 1, 1, 1]
    # Every call prefilled the prompt again, and usage says so.
    assert generation.prompt_tokens == 4 * 5
    assert sorted(c.tokens for c in generation.completions) == [1, 2, 3, 4]


async def test_seeded_fills_use_distinct_seeds() -> None:
    server = ignores_n_server()
    async with backend_for(server) as backend:
        await backend.generate("q", n=3, params=GenerationParams(max_tokens=4, seed=7))
    assert sorted(r["seed"] for r in server.requests) == [7, 8, 9]


async def test_without_filling_a_short_reply_is_an_error_naming_the_fix() -> None:
    async with backend_for(ignores_n_server(), fill_missing=False) as backend:
        with pytest.raises(BackendUnavailable, match=r"1 of n=3 samples.*fill_missing"):
            await backend.generate("q", n=3, params=PARAMS)


async def test_usage_that_counts_one_choice_is_corrected_from_logprobs() -> None:
    server = ScriptedOpenAIServer(usage_counts_one_choice=True)
    async with backend_for(server) as backend:
        generation = await backend.generate("q", n=4, params=PARAMS)
    assert server.requests[0]["logprobs"] is True, "asked for logprobs to count tokens"
    assert generation.completion_tokens == 1 + 2 + 3 + 4


async def test_without_logprobs_the_reported_usage_is_shared_by_text_length() -> None:
    server = ScriptedOpenAIServer(returns_logprobs=False)
    async with backend_for(server) as backend:
        generation = await backend.generate("q", n=2, params=PARAMS)
    assert generation.completion_tokens == 1 + 2
    assert [c.tokens for c in generation.completions] == [1, 2]


async def test_logprobs_are_returned_when_asked_for() -> None:
    async with backend_for(ScriptedOpenAIServer()) as backend:
        generation = await backend.generate(
            "q", n=2, params=GenerationParams(max_tokens=8, logprobs=True)
        )
    assert [c.logprobs for c in generation.completions] == [(-0.5,), (-0.5, -0.5)]


async def test_the_completions_api_sends_raw_text() -> None:
    server = ScriptedOpenAIServer()
    async with backend_for(server, api="completions") as backend:
        generation = await backend.generate(
            "2 + 3 =", n=2, params=GenerationParams(max_tokens=8, logprobs=True)
        )
    assert server.requests[0]["prompt"] == "2 + 3 ="
    assert [c.logprobs for c in generation.completions] == [(-0.25,), (-0.25, -0.25)]


async def test_system_prompt_and_stop_are_sent() -> None:
    server = ScriptedOpenAIServer()
    async with backend_for(server, system_prompt="Be brief.") as backend:
        await backend.generate("q", n=1, params=GenerationParams(stop=("\n",)))
    body = server.requests[0]
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["stop"] == ["\n"]


async def test_encode_returns_rows_in_input_order() -> None:
    async with backend_for(ScriptedOpenAIServer()) as backend:
        features = await backend.encode(["a", "bbb"])
    assert features.dtype == np.float32
    np.testing.assert_array_equal(features, [[1, 0, 1], [3, 1, 1]])


@pytest.mark.parametrize(
    ("status", "headers", "error", "message"),
    [
        (429, {"retry-after": "3"}, RateLimited, "HTTP 429"),
        (408, {}, BackendTimeout, "HTTP 408"),
        (500, {}, BackendUnavailable, "HTTP 500"),
        (503, {}, BackendUnavailable, "HTTP 503"),
        (400, {}, BackendRejected, "HTTP 400"),
        (401, {}, BackendRejected, "HTTP 401"),
        (404, {}, BackendRejected, "HTTP 404"),
    ],
)
async def test_http_errors_map_onto_the_howhard_tree(
    status: int, headers: dict[str, str], error: type[Exception], message: str
) -> None:
    server = ScriptedOpenAIServer(failure=(status, headers))
    async with backend_for(server) as backend:
        with pytest.raises(error, match=message) as caught:
            await backend.generate("q", n=2, params=PARAMS)
    assert isinstance(caught.value, RetryableError) == (status in {429, 408, 500, 503})
    assert len(server.requests) == 1, "the openai client's own retries are off by default"


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [({"retry-after": "3"}, 3.0), ({"retry-after-ms": "250"}, 0.25), ({}, None)],
)
async def test_rate_limits_carry_the_servers_retry_after(
    headers: dict[str, str], seconds: float | None
) -> None:
    async with backend_for(ScriptedOpenAIServer(failure=(429, headers))) as backend:
        with pytest.raises(RateLimited) as caught:
            await backend.generate("q", n=1, params=PARAMS)
    assert caught.value.retry_after == seconds


async def test_errors_while_filling_are_translated_too() -> None:
    server = ignores_n_server()
    async with backend_for(server) as backend:
        await backend.generate("q", n=1, params=PARAMS)
        server.failure = (503, {})
        with pytest.raises(BackendUnavailable, match="HTTP 503"):
            await backend.generate("q", n=2, params=PARAMS)


async def test_an_unreachable_server_is_unavailable() -> None:
    backend = OpenAIBackend(base_url="http://127.0.0.1:9/v1", model="m", timeout_s=5)
    try:
        with pytest.raises(BackendUnavailable, match="cannot reach"):
            await backend.generate("q", n=1, params=PARAMS)
    finally:
        await backend.aclose()


async def test_bad_options_and_arguments_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="api"):
        OpenAIBackend(base_url="http://x/v1", model="m", api="responses")
    with pytest.raises(ConfigError, match="timeout_s"):
        OpenAIBackend(base_url="http://x/v1", model="m", timeout_s=0)
    async with backend_for(ScriptedOpenAIServer()) as backend:
        with pytest.raises(ConfigError, match="n must be an integer >= 1, got 0"):
            await backend.generate("q", n=0, params=PARAMS)


async def test_a_closed_backend_says_so() -> None:
    async with backend_for(ScriptedOpenAIServer()) as backend:
        pass
    with pytest.raises(BackendUnavailable, match="closed"):
        await backend.generate("q", n=1, params=PARAMS)


async def test_greedy_decoding_asks_once_and_repeats_the_sample() -> None:
    server = ScriptedOpenAIServer()
    async with backend_for(server) as backend:
        generation = await backend.generate(
            "q", n=3, params=GenerationParams(max_tokens=8, temperature=0.0)
        )
    assert [r["n"] for r in server.requests] == [1], "vLLM rejects n>1 with greedy decoding"
    assert len({c.text for c in generation.completions}) == 1
    assert len(generation.completions) == 3


def _malformed_app() -> Starlette:
    """Answers 200 with bodies that lack what the OpenAI API promises."""

    async def chat(request: StarletteRequest) -> JSONResponse:
        return JSONResponse({"id": "x", "object": "chat.completion", "choices": None})

    async def embeddings(request: StarletteRequest) -> JSONResponse:
        row = {"object": "embedding", "index": 0, "embedding": [1.0, 2.0]}
        return JSONResponse({"object": "list", "data": [row], "model": "scripted"})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
        ]
    )


async def test_a_malformed_reply_is_a_backend_error_not_a_crash() -> None:
    client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=_malformed_app()))
    async with OpenAIBackend(
        base_url="http://scripted.test/v1", model="scripted", http_client=client
    ) as backend:
        with pytest.raises(BackendError, match="malformed chat response"):
            await backend.generate("q", n=2, params=PARAMS)
        with pytest.raises(BackendError, match=r"shape \(1, 2\) for 2 inputs"):
            await backend.encode(["a", "b"])
