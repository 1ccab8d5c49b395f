"""Best-of-k: sample ``budget`` completions in one call and keep the highest-scoring one."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from types import MappingProxyType

from howhard.errors import BackendError, ScoringError
from howhard.procedures.base import ABSTAINED, Context, Outcome, PlannedCall, extract_checked
from howhard.procedures.containment import contained, describe
from howhard.scoring.base import AnswerExtractor, Scorer
from howhard.scoring.extract import extract_final_answer
from howhard.types import Candidate, Completion, Request

__all__ = ["BestOfK", "best_index", "score_candidates"]


async def score_candidates(
    scorer: Scorer,
    extractor: AnswerExtractor,
    request: Request,
    completions: Sequence[Completion],
) -> list[Candidate]:
    """Score ``completions`` with ``scorer`` and extract their answers, checking the contract.

    A scorer that raises, returns the wrong number of scores or a non-finite score (other than
    ``-inf``, "unusable") fails the request with ``ScoringError`` naming it.
    """
    name = type(scorer).__name__
    raw = await contained(
        lambda: scorer.score(request, completions),
        lambda exc: ScoringError(f"{name}.score raised {describe(exc)}"),
        passes=(ScoringError, BackendError),
    )
    try:
        if isinstance(raw, str | bytes):
            raise TypeError("a string is not a list of scores")
        scores = list(raw)
    except TypeError as exc:
        raise ScoringError(
            f"{name}.score returned {type(raw).__name__} ({exc}); return a list of floats"
        ) from exc
    if len(scores) != len(completions):
        raise ScoringError(
            f"{name} returned {len(scores)} scores for "
            f"{len(completions)} completions; return one score per completion"
        )
    candidates: list[Candidate] = []
    for completion, score in zip(completions, scores, strict=True):
        if not isinstance(score, numbers.Real) or (not math.isfinite(score) and score != -math.inf):
            raise ScoringError(
                f"{name} returned score {score!r}; scores must be finite floats "
                "(or -inf for 'unusable')"
            )
        answer = extract_checked(extractor, completion.text)
        candidates.append(Candidate(completion=completion, score=float(score), answer=answer))
    return candidates


def best_index(candidates: Sequence[Candidate]) -> int:
    """The index of the highest-scored candidate; ties go to the earliest."""
    best = 0
    for i, candidate in enumerate(candidates):
        if candidate.score > candidates[best].score:
            best = i
    return best


def _abstain(default_answer: str | None) -> Outcome:
    return Outcome(answer=default_answer, chosen=None, abstained=True, metadata=ABSTAINED)


class BestOfK:
    """Draws ``budget`` samples (one backend call, ``n=budget``) and returns the best by ``scorer``.

    Ties go to the earliest sample. Budget 0 abstains: no backend call, ``default_answer``.
    The result's answer is the chosen sample's extracted final answer, or its text if none.
    When every score is 0 or 1 (a verifier), ``metadata["successes"]`` counts the passes.
    """

    def __init__(
        self,
        scorer: Scorer,
        *,
        extractor: AnswerExtractor = extract_final_answer,
        default_answer: str | None = None,
    ) -> None:
        self.scorer = scorer
        self._extract = extractor
        self.default_answer = default_answer

    def plan(self, budget: int) -> Sequence[PlannedCall]:
        """One call with ``n=budget`` samples, or none at budget 0."""
        return [PlannedCall(None, budget)] if budget > 0 else []

    async def run(self, request: Request, budget: int, context: Context) -> Outcome:
        """Sample, score and pick the best completion."""
        if budget == 0:
            return _abstain(self.default_answer)
        generation = await context.generate(request.prompt, n=budget)
        completions = generation.completions
        if not completions:
            raise ScoringError(f"backend returned no completions for n={budget}")
        candidates = await score_candidates(self.scorer, self._extract, request, completions)
        best = best_index(candidates)
        chosen = candidates[best]
        answer = chosen.answer if chosen.answer is not None else chosen.completion.text
        metadata: dict[str, int] = {}
        if all(c.score in (0.0, 1.0) for c in candidates):
            # A 0/1 verifier's verdicts: what a learning policy updates its estimates from.
            metadata["successes"] = sum(c.score == 1.0 for c in candidates)
        return Outcome(
            answer=answer,
            chosen=chosen,
            candidates=tuple(candidates),
            metadata=MappingProxyType(metadata),
        )
