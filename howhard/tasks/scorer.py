"""A verifier-backed scorer for the task suite: reward 1 for a correct reply, 0 otherwise."""

from __future__ import annotations

from collections.abc import Sequence

from howhard.errors import ScoringError
from howhard.tasks.suite import family
from howhard.types import Completion, Request

__all__ = ["TaskScorer"]


class TaskScorer:
    """Scores completions of suite questions with their family's deterministic verifier.

    Implements the ``howhard.scoring.Scorer`` protocol. The request must carry its family in
    ``metadata["family"]`` and the expected answer in ``reference`` (as the suite's JSONL rows do).
    """

    async def score(self, request: Request, completions: Sequence[Completion]) -> list[float]:
        """Return 1.0 for each completion whose reply states the reference answer, else 0.0."""
        name = request.metadata.get("family")
        if not isinstance(name, str):
            raise ScoringError(
                f"request {request.id!r} has no metadata['family']; TaskScorer scores only "
                "questions from howhard.tasks (build them with `python -m howhard.tasks`)"
            )
        if request.reference is None:
            raise ScoringError(f"request {request.id!r} has no reference answer to verify against")
        try:
            verifier = family(name)
        except ValueError as exc:
            raise ScoringError(str(exc)) from exc
        return [
            1.0 if verifier.verify(c.text, request.reference, request.prompt) else 0.0
            for c in completions
        ]
