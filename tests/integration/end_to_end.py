"""The end-to-end check every real backend must pass: Scheduler + BestOfK(MathAnswerVerifier)."""

from __future__ import annotations

import anyio

from howhard import GenerationParams, Result, Scheduler
from howhard.backends import Backend
from howhard.policies.builtin import UniformPolicy
from howhard.procedures import BestOfK
from howhard.scoring import MathAnswerVerifier

# The default model answers these in 75-88% of its samples (measured over 16 samples each in
# data/runs/trainval), so best-of-4 misses all three with probability ~1e-12. Bare phrasings
# ("What is 2 + 3?") invite chatty replies whose last number is not the answer; with those, all
# 12 samples of one CI run were judged wrong.
_SUFFIX = " Answer with just the number."
QUESTIONS = [
    ("What is 1 + 6?" + _SUFFIX, "7"),
    ("What is 1 + 3?" + _SUFFIX, "4"),
    ("What is 1 + 4?" + _SUFFIX, "5"),
]
BUDGET = 4


async def answer_arithmetic(backend: Backend, *, max_tokens: int = 40) -> list[Result]:
    """Answer QUESTIONS best-of-4 through a Scheduler and check results against the ledger."""
    params = GenerationParams(max_tokens=max_tokens, temperature=0.7)
    results: list[Result] = []
    async with Scheduler(
        backend=backend,
        policy=UniformPolicy(max_budget=BUDGET),
        procedure=BestOfK(MathAnswerVerifier()),
        average_budget=float(BUDGET),
        params=params,
    ) as scheduler:

        async def ask(question: str, reference: str) -> None:
            results.append(await scheduler.submit(question, tenant="e2e", reference=reference))

        with anyio.fail_after(600):
            async with anyio.create_task_group() as group:
                for question, reference in QUESTIONS:
                    group.start_soon(ask, question, reference)
        spend = (await scheduler.ledger.snapshot())["e2e"]

    assert len(results) == len(QUESTIONS)
    for result in results:
        assert result.budget == BUDGET and not result.abstained
        assert len(result.candidates) == BUDGET
        generated = sum(c.completion.tokens for c in result.candidates)
        assert result.usage.completion_tokens == generated
        assert result.usage.units == BUDGET
        assert result.usage.prompt_tokens > 0
        assert result.chosen is not None and result.chosen.score in {0.0, 1.0}
    # What the ledger settled is exactly what the results report, and nothing is left reserved.
    assert spend.settled.completion_tokens == sum(r.usage.completion_tokens for r in results)
    assert spend.settled.prompt_tokens == sum(r.usage.prompt_tokens for r in results)
    assert spend.settled.units == BUDGET * len(QUESTIONS)
    assert spend.open_reservations == 0
    # Best-of-4 with a verifier: at least one of these easy sums is answered correctly.
    assert any(r.chosen is not None and r.chosen.score == 1.0 for r in results), [
        [c.completion.text for c in r.candidates] for r in results
    ]
    return results
