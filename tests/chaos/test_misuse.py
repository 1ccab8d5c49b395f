"""Misuse is an immediate UsageError, and bad input a typed error that counts nothing."""

import asyncio
import math
import threading
from typing import Any

import anyio
import pytest

from howhard import Scheduler
from howhard.backends import ScriptedBackend
from howhard.errors import BackendError, InvalidRequest, SchedulerClosed, UsageError
from howhard.scheduler import SchedulerState
from howhard.types import GenerationParams, Result

pytestmark = pytest.mark.anyio


async def test_a_scheduler_used_from_another_thread_and_loop_says_so_at_once() -> None:
    async with Scheduler(backend=ScriptedBackend(), average_budget=1) as scheduler:
        caught: list[BaseException] = []

        def elsewhere() -> None:
            async def submit() -> None:
                try:
                    await scheduler.submit("q")
                except BaseException as exc:
                    caught.append(exc)

            asyncio.run(submit())  # another thread, another event loop

        thread = threading.Thread(target=elsewhere)
        thread.start()
        await anyio.to_thread.run_sync(thread.join, 5.0)
        assert len(caught) == 1 and isinstance(caught[0], UsageError)
        assert "another thread or event loop" in str(caught[0])
        assert scheduler.stats().submitted == 0
        assert isinstance(await scheduler.submit("q"), Result)  # its own loop still works


async def test_close_from_inside_a_backend_call_does_not_deadlock() -> None:
    holder: dict[str, Scheduler] = {}

    async def handler(prompt: str, n: int, params: GenerationParams) -> list[str]:
        if prompt == "close it":
            await holder["scheduler"].close()
        return ["The answer is 1."] * n

    with anyio.fail_after(5):
        async with Scheduler(backend=ScriptedBackend(handler), average_budget=1) as scheduler:
            holder["scheduler"] = scheduler
            with pytest.raises(BackendError) as caught:
                await scheduler.submit("close it")
            assert isinstance(caught.value.__cause__, UsageError)
            assert "would wait for itself" in str(caught.value.__cause__)
            assert isinstance(await scheduler.submit("q"), Result)
    assert scheduler.state is SchedulerState.CLOSED


async def test_aclose_cancel_from_inside_a_backend_call_closes_without_waiting_for_itself() -> None:
    holder: dict[str, Scheduler] = {}

    async def handler(prompt: str, n: int, params: GenerationParams) -> list[str]:
        await holder["scheduler"].aclose(cancel=True)
        await anyio.sleep_forever()  # cancelled with the rest of the scheduler's work
        return []

    with anyio.fail_after(5):
        async with Scheduler(backend=ScriptedBackend(handler), average_budget=1) as scheduler:
            holder["scheduler"] = scheduler
            with pytest.raises(SchedulerClosed):
                await scheduler.submit("stop everything")
    assert scheduler.state is SchedulerState.CLOSED


BAD_SUBMITS: list[tuple[str, dict[str, Any], str]] = [
    ("reference int", {"reference": 391}, "reference must be a string or None"),
    ("reference bytes", {"reference": b"391"}, "reference must be a string or None"),
    ("reference list", {"reference": ["391"]}, "reference must be a string or None"),
    ("reference nan", {"reference": math.nan}, "reference must be a string or None"),
    ("timeout huge int", {"timeout_s": 10**400}, "timeout_s must be a finite number"),
    ("timeout inf", {"timeout_s": math.inf}, "timeout_s must be a finite number"),
    ("timeout nan", {"timeout_s": math.nan}, "timeout_s must be a finite number"),
    ("timeout str", {"timeout_s": "5"}, "timeout_s must be a number"),
    ("lone surrogate", {"prompt": "What is \ud800?"}, "prompt is not valid Unicode"),
    ("reference surrogate", {"reference": "\udfff"}, "reference is not valid Unicode"),
    ("prompt bytes", {"prompt": b"What?"}, "takes a prompt string or a Request"),
    ("metadata list", {"metadata": [1]}, "metadata must be a mapping"),
    ("params dict", {"params": {"max_tokens": 4}}, "params must be a GenerationParams"),
]
SUBMIT_IDS = [bad[0] for bad in BAD_SUBMITS]


@pytest.mark.parametrize(
    ("what", "options", "message"), BAD_SUBMITS, ids=[b[0] for b in BAD_SUBMITS]
)
async def test_bad_submits_fail_typed_before_anything_is_counted(
    what: str, options: dict[str, Any], message: str
) -> None:
    backend = ScriptedBackend()
    async with Scheduler(backend=backend, average_budget=1) as scheduler:
        prompt = options.pop("prompt", "What is 17 * 23?")
        with pytest.raises(InvalidRequest, match=message):
            await scheduler.submit(prompt, **options)
        stats = scheduler.stats()
        assert stats.submitted == stats.resolved == 0
        assert await scheduler.spend() == {}
        assert isinstance(await scheduler.submit("q", timeout_s=5), Result)
    assert not [c for c in backend.calls if c.prompt != "q"]


async def test_a_prompt_over_the_size_limit_is_refused() -> None:
    async with Scheduler(backend=ScriptedBackend(), average_budget=1, config=None) as scheduler:
        with pytest.raises(InvalidRequest, match=r"more than max_prompt_chars=1000000"):
            await scheduler.submit("x" * 1_000_001)


BAD_PARAMS: list[tuple[dict[str, Any], str]] = [
    ({"max_tokens": True}, "max_tokens must be an integer"),
    ({"max_tokens": 8.0}, "max_tokens must be an integer"),
    ({"max_tokens": 0}, "max_tokens must be an integer"),
    ({"max_tokens": 10**9}, "max_tokens must be an integer"),
    ({"temperature": math.nan}, "temperature must be a finite float"),
    ({"temperature": True}, "temperature must be a finite float"),
    ({"temperature": "0.7"}, "temperature must be a finite float"),
    ({"top_p": math.nan}, "top_p must be a float"),
    ({"top_p": "1"}, "top_p must be a float"),
    ({"seed": math.nan}, "seed must be an integer"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"seed": True}, "seed must be an integer"),
    ({"seed": 2**70}, "seed must be an integer"),
    ({"logprobs": "yes"}, "logprobs must be True or False"),
    ({"logprobs": 1}, "logprobs must be True or False"),
    ({"stop": 5}, "stop must be a string or a list of strings"),
    ({"stop": [""]}, "stop must hold non-empty strings"),
    ({"stop": ["a", 3]}, "stop must hold non-empty strings"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_PARAMS, ids=[repr(b[0]) for b in BAD_PARAMS])
def test_generation_params_are_strict(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        GenerationParams(**fields)


def test_a_stop_string_is_one_stop_not_one_per_character() -> None:
    assert GenerationParams(stop="END").stop == ("END",)
    assert GenerationParams(stop=["END", "STOP"]).stop == ("END", "STOP")  # type: ignore[arg-type]


async def test_a_stop_string_reaches_the_backend_whole() -> None:
    backend = ScriptedBackend()
    async with Scheduler(backend=backend, average_budget=1) as scheduler:
        await scheduler.submit("q", params=GenerationParams(stop="END"))
    assert backend.calls[0].params.stop == ("END",)
