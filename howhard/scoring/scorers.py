"""General-purpose scorers: exact match, mean token logprob, and a wrapper for plain functions."""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Sequence

from howhard.errors import ScoringError
from howhard.scoring.base import AnswerExtractor
from howhard.scoring.extract import extract_final_answer, normalize_answer
from howhard.types import Completion, Request

__all__ = ["CallableScorer", "ExactMatch", "MeanLogprob"]


def _reference(request: Request, scorer: str) -> str:
    if request.reference is None:
        raise ScoringError(
            f"{scorer} needs the request's reference answer; submit with reference=..."
        )
    return request.reference


class ExactMatch:
    """1.0 when the completion's normalised final answer equals the normalised reference."""

    def __init__(
        self,
        extractor: AnswerExtractor = extract_final_answer,
        *,
        normalize: Callable[[str], str] = normalize_answer,
    ) -> None:
        self._extract = extractor
        self._normalize = normalize

    async def score(self, request: Request, completions: Sequence[Completion]) -> list[float]:
        """Score each completion 1.0 (match) or 0.0."""
        expected = self._normalize(_reference(request, "ExactMatch"))
        out = []
        for completion in completions:
            answer = self._extract(completion.text)
            out.append(1.0 if answer is not None and self._normalize(answer) == expected else 0.0)
        return out


class MeanLogprob:
    """Reranks by the backend's average token log-probability (needs ``logprobs=True``)."""

    async def score(self, request: Request, completions: Sequence[Completion]) -> list[float]:
        """Each completion's mean token logprob; an empty completion scores ``-inf``."""
        out = []
        for completion in completions:
            if completion.logprobs is None:
                raise ScoringError(
                    "MeanLogprob needs token logprobs; set GenerationParams(logprobs=True) "
                    "and use a backend that returns them"
                )
            mean = completion.mean_logprob
            out.append(-math.inf if mean is None else mean)
        return out


class CallableScorer:
    """Wraps ``fn(request, completion) -> float`` (sync or async) as a ``Scorer``."""

    def __init__(self, fn: Callable[[Request, Completion], float | Awaitable[float]]) -> None:
        self._fn = fn

    async def score(self, request: Request, completions: Sequence[Completion]) -> list[float]:
        """Apply the function to each completion in order."""
        out = []
        for completion in completions:
            value = self._fn(request, completion)
            if inspect.isawaitable(value):
                value = await value
            out.append(float(value))
        return out
