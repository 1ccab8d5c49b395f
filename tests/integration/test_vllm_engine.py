"""VLLMBackend on a real in-process vLLM engine serving the default model."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

from howhard.backends import Backend, TransformersBackend
from howhard.backends._prompts import prompt_ids
from howhard.errors import BackendUnavailable
from howhard.models import default_model_path
from howhard.testing import BackendContract
from howhard.types import GenerationParams
from tests.integration.end_to_end import answer_arithmetic

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

QUESTION = "What is 7 + 8?"


async def _wait_until(condition: Any) -> None:
    """Wait (at most a minute) for an engine-side condition that has no event to await."""
    with anyio.fail_after(60):
        while not condition():  # noqa: ASYNC110 - vLLM exposes counts, not events
            await anyio.sleep(0.05)


async def test_n_samples_share_one_request_with_usage_and_logprobs(vllm_backend: Any) -> None:
    params = GenerationParams(max_tokens=12, temperature=0.7, logprobs=True)
    generation = await vllm_backend.generate(QUESTION, n=4, params=params)

    assert len(generation.completions) == 4
    expected_prompt = prompt_ids(vllm_backend._tokenizer, QUESTION, chat=True)
    assert generation.prompt_tokens == len(expected_prompt)
    for completion in generation.completions:
        assert 1 <= completion.tokens <= 12
        assert completion.logprobs is not None and len(completion.logprobs) == completion.tokens
        assert all(lp <= 0 for lp in completion.logprobs)
        assert completion.finish_reason in {"stop", "length"}
        assert completion.text.strip()
    assert generation.completion_tokens == sum(c.tokens for c in generation.completions)
    assert generation.model == "SmolLM2-135M-Instruct"


async def test_many_concurrent_calls_all_resolve(vllm_backend: Any) -> None:
    params = GenerationParams(max_tokens=8)
    sizes: list[int] = []

    async def one(i: int) -> None:
        generation = await vllm_backend.generate(f"What is {i} + 2?", n=4, params=params)
        sizes.append(len(generation.completions))

    with anyio.fail_after(300):
        async with anyio.create_task_group() as group:
            for i in range(16):
                group.start_soon(one, i)
    assert sizes == [4] * 16


async def test_cancelling_a_call_aborts_its_engine_request(vllm_backend: Any) -> None:
    engine = vllm_backend._engine
    params = GenerationParams(max_tokens=1000, temperature=1.0)

    async def long_call() -> None:
        await vllm_backend.generate("Tell me a very long story.", n=2, params=params)

    async with anyio.create_task_group() as group:
        group.start_soon(long_call)
        await _wait_until(lambda: engine.get_num_unfinished_requests() > 0)
        group.cancel_scope.cancel()
    await _wait_until(lambda: engine.get_num_unfinished_requests() == 0)
    after = await vllm_backend.generate(QUESTION, n=1, params=GenerationParams(max_tokens=4))
    assert len(after.completions) == 1


async def test_pooling_features_equal_the_transformers_encoder(
    vllm_backend: Any, model_path: Path
) -> None:
    prompts = [QUESTION, "What is 48 + 67?", "hi"]
    from_vllm = await vllm_backend.encode(prompts)
    local = TransformersBackend(model_path, dtype="float32", num_threads=1)
    try:
        from_transformers = await local.encode(prompts)
    finally:
        await local.aclose()
    assert from_vllm.shape == from_transformers.shape == (3, 576)
    cosine = np.sum(from_vllm * from_transformers, axis=1) / (
        np.linalg.norm(from_vllm, axis=1) * np.linalg.norm(from_transformers, axis=1)
    )
    assert cosine.min() >= 0.9999, cosine


async def test_end_to_end_best_of_k_with_a_math_verifier(vllm_backend: Any) -> None:
    await answer_arithmetic(vllm_backend)


class TestVLLMBackendConformance(BackendContract):
    """The in-process vLLM backend passes the backend conformance suite."""

    encodes = True

    @pytest.fixture
    def backend(self, vllm_backend: Any) -> Any:
        return vllm_backend  # the module's running engine: starting one per test takes minutes

    def make_backend(self) -> Backend:
        from howhard.backends import VLLMBackend

        return VLLMBackend(default_model_path(), encoder=True)  # closed before it ever starts


async def test_zz_engine_death_is_reported_not_hung(vllm_backend: Any) -> None:
    """Runs last in this module: it kills the shared engine's core process."""
    manager = vllm_backend._engine.engine_core.resources.engine_manager
    os.kill(manager.processes[0].pid, signal.SIGKILL)
    params = GenerationParams(max_tokens=8)
    with anyio.fail_after(120):
        with pytest.raises(BackendUnavailable, match="died"):
            await vllm_backend.generate(QUESTION, n=2, params=params)
        with pytest.raises(BackendUnavailable, match="died"):
            await vllm_backend.generate(QUESTION, n=2, params=params)
