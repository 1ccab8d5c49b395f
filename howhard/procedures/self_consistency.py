"""Self-consistency: sample ``budget`` completions and return the majority answer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import MappingProxyType

from howhard.errors import ScoringError
from howhard.procedures.base import ABSTAINED, Context, Outcome, PlannedCall, extract_checked
from howhard.scoring.base import AnswerExtractor
from howhard.scoring.extract import extract_final_answer, normalize_answer
from howhard.types import Candidate, Completion, Request

__all__ = ["SelfConsistency", "vote"]


class SelfConsistency:
    """Majority vote over the samples' normalised final answers.

    Each candidate's score is its answer's vote share (0 when no answer was extracted).
    Tie-break: among answers with the most votes, the one that appeared *first* in sample order
    wins, and the chosen candidate is that answer's first sample — deterministic for a given set
    of samples. With no extractable answer at all, the first sample is chosen and its text is
    the answer. A backend that returns no completions fails the request with ``ScoringError``,
    as in ``BestOfK``. Budget 0 abstains without a backend call and answers ``default_answer``.
    """

    def __init__(
        self,
        answer_extractor: AnswerExtractor = extract_final_answer,
        *,
        normalize: Callable[[str], str] = normalize_answer,
        default_answer: str | None = None,
    ) -> None:
        self._extract = answer_extractor
        self._normalize = normalize
        self.default_answer = default_answer

    def plan(self, budget: int) -> Sequence[PlannedCall]:
        """One call with ``n=budget`` samples, or none at budget 0."""
        return [PlannedCall(None, budget)] if budget > 0 else []

    async def run(self, request: Request, budget: int, context: Context) -> Outcome:
        """Sample and vote."""
        if budget == 0:
            return Outcome(
                answer=self.default_answer, chosen=None, abstained=True, metadata=ABSTAINED
            )
        generation = await context.generate(request.prompt, n=budget)
        if not generation.completions:
            raise ScoringError(f"backend returned no completions for n={budget}")
        answers = [extract_checked(self._extract, c.text) for c in generation.completions]
        return vote(generation.completions, answers, self._normalize)


def vote(
    completions: Sequence[Completion],
    answers: Sequence[str | None],
    normalize: Callable[[str], str],
) -> Outcome:
    """The majority :class:`Outcome` over ``completions`` and their extracted ``answers``.

    Tie-break and scores as :class:`SelfConsistency` documents; ``completions`` is non-empty.
    """
    keys = [None if a is None else normalize(a) for a in answers]
    votes: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key is not None:
            votes[key] = votes.get(key, 0) + 1
            first.setdefault(key, i)
    total = len(keys)
    candidates = tuple(
        Candidate(
            completion=completion,
            score=votes[key] / total if key is not None else 0.0,
            answer=answer,
        )
        for completion, answer, key in zip(completions, answers, keys, strict=True)
    )
    if not votes:
        return Outcome(
            answer=candidates[0].completion.text, chosen=candidates[0], candidates=candidates
        )
    # max() keeps the first maximal element; iterating in first-appearance order makes the
    # earliest answer win ties.
    winner = max(votes, key=lambda k: votes[k])
    chosen = candidates[first[winner]]
    return Outcome(
        answer=chosen.answer,
        chosen=chosen,
        candidates=candidates,
        metadata=MappingProxyType({"votes": dict(votes)}),
    )
