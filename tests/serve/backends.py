"""Scripted backends the gateway's tests build through ``factory = "tests.serve.backends:..."``.

A stand-in for a model: its replies are computed from the prompt, so the tests can check what
reached the backend (the rendered conversation, the sampling parameters) through the gateway.
"""

from __future__ import annotations

import re

import anyio

from howhard.backends import ScriptedBackend
from howhard.types import GenerationParams


def _last_number(text: str) -> int | None:
    numbers = re.findall(r"-?\d+", text)
    return int(numbers[-1]) if numbers else None


async def _reply(prompt: str, slow_s: float) -> str:
    if "SLOW" in prompt:
        await anyio.sleep(slow_s)  # stands in for a long generation; cancellable
    turns = prompt.split("\n\n")
    last = turns[-1]
    product = re.search(r"What is (\d+) \* (\d+)\?", last)
    if product:
        return f"{int(product.group(1)) * int(product.group(2))}"
    add = re.search(r"[Aa]dd (\d+) to", last)
    if add:
        # The previous answer lives in the transcript: only a gateway that forwards the
        # conversation lets this reply be right.
        previous = [t for t in turns if t.startswith("Assistant: ")]
        base = _last_number(previous[-1]) if previous else None
        if base is None:
            return "I do not know your previous answer."
        return f"{base + int(add.group(1))}"
    if "ECHO" in prompt:
        return prompt
    return "The answer is 4."


class _SlowStart(ScriptedBackend):
    """Takes ``start_s`` seconds to start, as an engine loading its weights does."""

    def __init__(self, *args: object, start_s: float, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.start_s = start_s

    async def start(self) -> None:
        await anyio.sleep(self.start_s)


def make(*, slow_s: float = 30.0, start_s: float = 0.0, model: str = "scripted") -> ScriptedBackend:
    """A scripted backend answering arithmetic and transcripts (see the module docstring).

    A prompt containing "STALL" is answered at once the first time and takes ``slow_s`` every
    later time: a sequential request stuck in its second round.
    """
    calls: dict[str, int] = {}

    async def handler(prompt: str, n: int, params: GenerationParams) -> list[str]:
        if "STALL" in prompt:
            calls[prompt] = calls.get(prompt, 0) + 1
            if calls[prompt] > 1:
                await anyio.sleep(slow_s)  # cancellable
        text = await _reply(prompt, slow_s)
        return [text] * n

    if start_s > 0:
        return _SlowStart(handler, model=model, record=False, start_s=start_s)
    return ScriptedBackend(handler, model=model, record=False)
