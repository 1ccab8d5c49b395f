"""OpenAIBackend against a hostile server on a real socket: every call ends, typed and bounded."""

import time

import anyio
import pytest

from howhard import Scheduler, SchedulerConfig
from howhard.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    RateLimited,
)
from howhard.types import GenerationParams, Usage
from tests.chaos.hostile_server import hostile_server

pytest.importorskip("openai")
from howhard.backends import OpenAIBackend

pytestmark = pytest.mark.anyio

PARAMS = GenerationParams(max_tokens=8)


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("unavailable", BackendUnavailable),
        ("not_json", BackendError),
        ("reset", BackendError),
        ("str_usage", BackendError),
        ("rate_limited_for_a_day", RateLimited),
    ],
)
async def test_a_failing_server_is_a_typed_backend_error(
    mode: str, error: type[BackendError]
) -> None:
    async with hostile_server() as url, OpenAIBackend(base_url=url, model=mode) as backend:
        with anyio.fail_after(10), pytest.raises(error):
            await backend.generate("q", n=1, params=PARAMS)


async def test_a_dripping_body_is_cut_at_timeout_s_for_the_whole_call() -> None:
    async with (
        hostile_server() as url,
        OpenAIBackend(base_url=url, model="drip", timeout_s=0.5) as backend,
    ):
        began = time.monotonic()
        with anyio.fail_after(10), pytest.raises(BackendTimeout, match=r"timeout_s=0\.5"):
            await backend.generate("q", n=1, params=PARAMS)
        assert time.monotonic() - began < 3.0


@pytest.mark.parametrize("mode", ["short", "long"])
async def test_a_server_returning_the_wrong_number_of_choices_gives_exactly_n(mode: str) -> None:
    async with hostile_server() as url, OpenAIBackend(base_url=url, model=mode) as backend:
        generation = await backend.generate("q", n=3, params=PARAMS)
    assert len(generation.completions) == 3


async def test_absurd_usage_and_logprobs_are_bounded_by_max_tokens() -> None:
    async with hostile_server() as url:
        async with OpenAIBackend(base_url=url, model="absurd_usage") as backend:
            absurd = await backend.generate("q", n=1, params=PARAMS)
        async with OpenAIBackend(base_url=url, model="many_logprobs") as backend:
            many = await backend.generate(
                "q", n=2, params=GenerationParams(max_tokens=8, logprobs=True)
            )
    assert absurd.completions[0].tokens == 8
    assert all(c.tokens <= 8 and len(c.logprobs or ()) == 8 for c in many.completions)


async def test_a_reply_without_usage_is_charged_its_worst_case() -> None:
    async with hostile_server() as url, OpenAIBackend(base_url=url, model="no_usage") as backend:
        generation = await backend.generate("What is 2 + 2?", n=1, params=PARAMS)
        config = SchedulerConfig(average_budget=2, params=PARAMS)
        async with Scheduler(backend=backend, config=config) as scheduler:
            await scheduler.submit("What is 2 + 2?")
            spend = (await scheduler.spend())["default"]
    # Generated and unmetered: paid at its most, never as free.
    assert generation.completions[0].tokens == 8
    assert generation.prompt_tokens == len(b"What is 2 + 2?")
    assert spend.settled.completion_tokens == 2 * 8 and spend.settled.prompt_tokens > 0
    assert spend.settled != Usage()


async def test_a_retry_after_of_a_day_through_the_scheduler_ends_at_once() -> None:
    async with (
        hostile_server() as url,
        OpenAIBackend(base_url=url, model="rate_limited_for_a_day") as backend,
    ):
        config = SchedulerConfig(average_budget=1, request_timeout_s=None)
        async with Scheduler(backend=backend, config=config) as scheduler:
            with anyio.fail_after(10), pytest.raises(RateLimited):
                await scheduler.submit("q")
