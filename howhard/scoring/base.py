"""The Scorer protocol: how a procedure turns sampled completions into comparable scores."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeAlias, runtime_checkable

from howhard.types import Completion, Request

__all__ = ["AnswerExtractor", "Scorer"]

AnswerExtractor: TypeAlias = Callable[[str], "str | None"]
"""Maps a completion's text to its final answer, or ``None`` when it gives none."""


@runtime_checkable
class Scorer(Protocol):
    """Scores each completion of one request; higher is better (a verifier returns 0 or 1)."""

    async def score(self, request: Request, completions: Sequence[Completion]) -> list[float]:
        """Return one finite score per completion, in order."""
        ...
