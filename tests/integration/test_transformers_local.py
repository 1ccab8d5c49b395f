"""TransformersBackend on the embedded default model (SmolLM2-135M-Instruct, bf16 on CPU)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from howhard.backends import TransformersBackend
from howhard.types import GenerationParams
from tests.integration.end_to_end import answer_arithmetic

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture(scope="module")
async def backend(model_path: Path) -> AsyncIterator[TransformersBackend]:
    # One thread: on a CPU shared with other busy processes, spinning OpenMP threads crawl.
    async with TransformersBackend(model_path, num_threads=1) as backend:
        yield backend


async def test_samples_from_the_default_model(backend: TransformersBackend) -> None:
    generation = await backend.generate(
        "What is 2 + 3?", n=4, params=GenerationParams(max_tokens=16, logprobs=True)
    )
    assert len(generation.completions) == 4
    assert generation.prompt_tokens > 20  # includes the chat template's system prompt
    for completion in generation.completions:
        assert completion.text.strip()
        assert completion.logprobs is not None and len(completion.logprobs) == completion.tokens


async def test_encode_gives_576_dimensional_features(backend: TransformersBackend) -> None:
    features = await backend.encode(["What is 2 + 3?", "What is 48 + 67?"])
    assert features.shape == (2, 576)


async def test_end_to_end_best_of_k_with_a_math_verifier(backend: TransformersBackend) -> None:
    await answer_arithmetic(backend)


async def test_sequential_best_of_k_settles_only_the_samples_it_drew(
    backend: TransformersBackend,
) -> None:
    import anyio

    from howhard import RoundsConfig, Scheduler
    from howhard.policies import UniformPolicy
    from howhard.procedures import SequentialBestOfK
    from howhard.scoring import MathAnswerVerifier
    from tests.integration.end_to_end import QUESTIONS

    procedure = SequentialBestOfK(
        MathAnswerVerifier(), config=RoundsConfig(schedule=(1, 2), max_budget=8)
    )
    results = []
    async with Scheduler(
        backend=backend,
        policy=UniformPolicy(),
        procedure=procedure,
        average_budget=8.0,
        max_budget=8,
        params=GenerationParams(max_tokens=40, temperature=0.7),
    ) as scheduler:

        async def ask(question: str, reference: str) -> None:
            results.append(await scheduler.submit(question, tenant="seq", reference=reference))

        with anyio.fail_after(600):
            async with anyio.create_task_group() as group:
                for question, reference in QUESTIONS:
                    group.start_soon(ask, question, reference)
        spend = (await scheduler.ledger.snapshot())["seq"]
    # These questions are answered right in 75-88% of samples: each stops at its first pass.
    assert all(r.metadata["stop_reason"] == "passed" for r in results)
    for r in results:
        assert r.usage.units == r.metadata["samples"] == len(r.candidates) < 8
        assert r.usage.completion_tokens == sum(c.completion.tokens for c in r.candidates)
    assert spend.settled.units == sum(r.usage.units for r in results)
    assert spend.settled.completion_tokens == sum(r.usage.completion_tokens for r in results)
    assert spend.open_reservations == 0
