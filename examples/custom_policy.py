"""A user-written policy in a dozen lines: longer prompts get more samples.

Runs as is with the in-package ScriptedBackend stand-in (no model needed):
    python examples/custom_policy.py
Swap in a real backend (TransformersBackend, VLLMBackend, OpenAIBackend) to serve a model.
"""

from collections.abc import Sequence

import anyio

from howhard import BatchingConfig, BudgetBounds, Request, Scheduler
from howhard.backends import ScriptedBackend


class LongerThinksHarder:
    """Split the batch's budget in proportion to prompt length (a crude difficulty guess)."""

    async def allocate(
        self, requests: Sequence[Request], total_budget: int, bounds: BudgetBounds
    ) -> list[int]:
        words = [len(r.prompt.split()) for r in requests]
        budgets = [total_budget * w // sum(words) for w in words]
        # Units lost to rounding go to the longest prompts first.
        longest_first = sorted(range(len(requests)), key=lambda i: -words[i])
        for i in longest_first[: total_budget - sum(budgets)]:
            budgets[i] += 1
        return [min(b, bounds.max_budget) for b in budgets]  # the scheduler's per-request cap


ANSWERS = {
    "What is 2 + 2?": "The answer is 4.",
    "A train leaves at 3pm at 60 mph. When has it gone 150 miles?": [
        "The answer is 5:30pm.",
        "The answer is 6pm.",
        "The answer is 5:30pm.",
    ],
}


async def main() -> None:
    async with (
        Scheduler(
            backend=ScriptedBackend(ANSWERS),
            policy=LongerThinksHarder(),
            average_budget=3,
            batching=BatchingConfig(max_batch_size=2, max_wait_s=0.05),
        ) as scheduler,
        anyio.create_task_group() as tg,
    ):
        for prompt in ANSWERS:
            tg.start_soon(show, scheduler, prompt)


async def show(scheduler: Scheduler, prompt: str) -> None:
    result = await scheduler.submit(prompt, tenant="docs")
    print(f"{result.budget} samples -> {result.answer!r:10} {prompt}")


if __name__ == "__main__":
    anyio.run(main)
