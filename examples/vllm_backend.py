"""Answer small sums best-of-8 with vLLM running in this process.

    python examples/vllm_backend.py

Each request's 8 samples are one vLLM request (SamplingParams(n=8)), so the prompt is prefilled
once. On CPU, vLLM needs a safetensors folder (the default model is prepared as one).
"""

import anyio

from howhard import GenerationParams, Scheduler
from howhard.backends import VLLMBackend
from howhard.models import default_model_path
from howhard.procedures import BestOfK
from howhard.scoring import MathAnswerVerifier

QUESTIONS = {"What is 2 + 3?": "5", "What is 7 + 8?": "15", "What is 3 + 4?": "7"}


async def main() -> None:
    async with (
        # encoder=True also starts a LAST-token pooling engine for backend.encode(...).
        VLLMBackend(default_model_path(), max_model_len=1024) as backend,
        Scheduler(
            backend=backend,
            procedure=BestOfK(MathAnswerVerifier()),
            average_budget=8.0,
            params=GenerationParams(max_tokens=48),
        ) as scheduler,
        anyio.create_task_group() as group,
    ):
        for question, reference in QUESTIONS.items():
            group.start_soon(ask, scheduler, question, reference)


async def ask(scheduler: Scheduler, question: str, reference: str) -> None:
    result = await scheduler.submit(question, reference=reference)
    print(f"{question} -> {result.answer!r} (score {result.chosen and result.chosen.score})")


if __name__ == "__main__":  # vLLM's engine runs in a spawned process: keep this guard
    anyio.run(main)
