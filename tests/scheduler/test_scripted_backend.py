"""ScriptedBackend: a scripted stand-in that behaves like a backend, faults included."""

import numpy as np
import pytest

from howhard.backends import Backend, Encoder, ScriptedBackend
from howhard.errors import (
    BackendRejected,
    BackendUnavailable,
    ConfigError,
    RateLimited,
    RetryableError,
)
from howhard.types import GenerationParams

pytestmark = pytest.mark.anyio
PARAMS = GenerationParams(max_tokens=8)


def test_satisfies_backend_and_encoder_protocols() -> None:
    backend = ScriptedBackend()
    assert isinstance(backend, Backend)
    assert isinstance(backend, Encoder)


async def test_handler_answers_and_counts_whitespace_tokens() -> None:
    backend = ScriptedBackend(lambda prompt, n, params: [f"echo {prompt}"] * n)
    generation = await backend.generate("two words", n=3, params=PARAMS)
    assert [c.text for c in generation.completions] == ["echo two words"] * 3
    assert [c.tokens for c in generation.completions] == [3, 3, 3]
    assert generation.prompt_tokens == 2
    assert generation.completion_tokens == 9


async def test_async_handler_is_awaited() -> None:
    async def handler(prompt: str, n: int, params: GenerationParams) -> list[str]:
        return ["ok"] * n

    generation = await ScriptedBackend(handler).generate("q", n=2, params=PARAMS)
    assert [c.text for c in generation.completions] == ["ok", "ok"]


async def test_handler_returning_wrong_count_is_reported() -> None:
    backend = ScriptedBackend(lambda prompt, n, params: ["one"])
    with pytest.raises(ConfigError, match="returned 1 texts for n=2"):
        await backend.generate("q", n=2, params=PARAMS)


async def test_mapping_cycles_answers_and_falls_back_to_choices() -> None:
    backend = ScriptedBackend({"q": ["a", "b"]}, choices=["fallback"])
    generation = await backend.generate("q", n=3, params=PARAMS)
    assert [c.text for c in generation.completions] == ["a", "b", "a"]
    other = await backend.generate("unknown", n=1, params=PARAMS)
    assert other.completions[0].text == "fallback"


async def test_seeded_choices_are_reproducible() -> None:
    first = await ScriptedBackend(seed=3).generate("q", n=8, params=PARAMS)
    second = await ScriptedBackend(seed=3).generate("q", n=8, params=PARAMS)
    assert first.completions == second.completions


async def test_long_text_is_cut_at_max_tokens() -> None:
    backend = ScriptedBackend(lambda prompt, n, params: ["w " * 20] * n)
    generation = await backend.generate("q", n=1, params=GenerationParams(max_tokens=5))
    assert generation.completions[0].tokens == 5
    assert generation.completions[0].finish_reason == "length"


async def test_logprobs_only_when_asked_and_deterministic() -> None:
    backend = ScriptedBackend({"q": "three word answer"})
    plain = await backend.generate("q", n=1, params=PARAMS)
    assert plain.completions[0].logprobs is None
    asked = GenerationParams(max_tokens=8, logprobs=True)
    a = await backend.generate("q", n=2, params=asked)
    assert a.completions[0].logprobs is not None
    assert len(a.completions[0].logprobs) == 3
    assert a.completions[0].logprobs == a.completions[1].logprobs


async def test_fault_script_raises_in_order_and_records_calls() -> None:
    backend = ScriptedBackend(
        {"q": "fine"},
        faults=[RateLimited("slow down", retry_after=2.0), None, BackendRejected],
    )
    with pytest.raises(RateLimited) as info:
        await backend.generate("q", n=1, params=PARAMS)
    assert info.value.retry_after == 2.0
    assert (await backend.generate("q", n=1, params=PARAMS)).completions[0].text == "fine"
    with pytest.raises(BackendRejected):
        await backend.generate("q", n=1, params=PARAMS)
    assert (await backend.generate("q", n=1, params=PARAMS)).completions[0].text == "fine"
    assert [type(call.error).__name__ for call in backend.calls] == [
        "RateLimited",
        "NoneType",
        "BackendRejected",
        "NoneType",
    ]


async def test_fault_rate_is_seeded() -> None:
    async def outcomes(seed: int) -> list[bool]:
        backend = ScriptedBackend(fault_rate=0.3, seed=seed)
        failed = []
        for _ in range(200):
            try:
                await backend.generate("q", n=1, params=PARAMS)
                failed.append(False)
            except RetryableError:
                failed.append(True)
        return failed

    first = await outcomes(1)
    assert first == await outcomes(1)
    assert 30 < sum(first) < 90


async def test_encode_is_deterministic_per_prompt() -> None:
    backend = ScriptedBackend(hidden_size=4)
    features = await backend.encode(["a", "b", "a"])
    assert features.shape == (3, 4)
    assert features.dtype == np.float32
    np.testing.assert_array_equal(features[0], features[2])
    assert not np.array_equal(features[0], features[1])


async def test_closed_backend_refuses_calls() -> None:
    backend = ScriptedBackend()
    await backend.aclose()
    await backend.aclose()
    with pytest.raises(BackendUnavailable, match="closed"):
        await backend.generate("q", n=1, params=PARAMS)


def test_invalid_configuration_names_the_parameter() -> None:
    with pytest.raises(ConfigError, match="fault_rate must be in"):
        ScriptedBackend(fault_rate=2.0)
    with pytest.raises(ConfigError, match="latency_s must be >= 0"):
        ScriptedBackend(latency_s=-1)
