"""A verifier-backed scorer for the task suite: reward 1 for a correct reply, 0 otherwise."""

from __future__ import annotations

from collections.abc import Sequence

from howhard.errors import ScoringError
from howhard.scoring.short_answer import ShortAnswerVerifier
from howhard.tasks.suite import FAMILIES
from howhard.types import Completion, Request

__all__ = ["TaskScorer"]

_BY_NAME = {f.name: f for f in FAMILIES}


class TaskScorer:
    """Scores completions with their family's deterministic verifier, or the general one.

    Implements the ``howhard.scoring.Scorer`` protocol. A request whose ``metadata["family"]``
    names a built-in family (as the suite's JSONL rows do) is scored by that family's verifier;
    any other request is scored by :class:`~howhard.scoring.ShortAnswerVerifier`. Either way the
    request needs its expected answer in ``reference``.
    """

    def __init__(self) -> None:
        self._general = ShortAnswerVerifier()

    async def score(self, request: Request, completions: Sequence[Completion]) -> list[float]:
        """Return 1.0 for each completion whose reply states the reference answer, else 0.0."""
        if request.reference is None:
            raise ScoringError(f"request {request.id!r} has no reference answer to verify against")
        name = request.metadata.get("family")
        verifier = _BY_NAME.get(name) if isinstance(name, str) else None
        if verifier is None:
            return await self._general.score(request, completions)
        return [
            1.0 if verifier.verify(c.text, request.reference, request.prompt) else 0.0
            for c in completions
        ]
