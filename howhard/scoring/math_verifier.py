"""MathAnswerVerifier: checks a completion's final answer against the reference with math-verify.

Equivalent forms count as equal (``12.5`` = ``\\frac{25}{2}``, ``x=2`` = ``2``). ``math-verify``
(and sympy under it) is imported on first use; install it with ``pip install 'howhard[math]'``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import Any

import structlog

from howhard.errors import ScoringError, missing_extra
from howhard.scoring.base import AnswerExtractor
from howhard.scoring.extract import extract_final_answer
from howhard.types import Completion, Request

__all__ = ["MathAnswerVerifier"]

log = structlog.get_logger("howhard.scoring")


@functools.cache
def _math_verify() -> Any:
    try:
        import math_verify
    except ImportError as exc:
        raise missing_extra("math-verify", "math") from exc
    return math_verify


class MathAnswerVerifier:
    """Binary verifier: 1.0 when the extracted final answer is mathematically the reference.

    Results are cached per (reference, answer) pair, since samples repeat answers often.
    When math-verify fails on one sample's answer, that sample scores 0.0 and a
    ``scoring.verify_failed`` warning names the request; the other samples are scored normally.
    Parsing runs under math-verify's own timeout on the main thread and without one elsewhere
    (its timeout relies on ``signal.alarm``).
    """

    def __init__(
        self,
        extractor: AnswerExtractor = extract_final_answer,
        *,
        timeout_s: int = 5,
        cache_size: int = 4096,
    ) -> None:
        self._extract = extractor
        self._timeout_s = timeout_s
        self._equal = functools.lru_cache(maxsize=cache_size)(self._compare)

    def _compare(self, reference: str, answer: str) -> bool:
        mv = _math_verify()
        timeout = self._timeout_s if threading.current_thread() is threading.main_thread() else None
        try:
            gold = mv.parse(_as_math(reference), parsing_timeout=timeout)
            pred = mv.parse(_as_math(answer), parsing_timeout=timeout)
            return bool(mv.verify(gold, pred, timeout_seconds=timeout))
        except Exception as exc:  # math-verify raises assorted sympy errors on odd input
            raise ScoringError(
                f"math-verify failed comparing answer {answer!r} with reference {reference!r}"
            ) from exc

    async def score(self, request: Request, completions: Sequence[Completion]) -> list[float]:
        """1.0 for each completion whose final answer matches ``request.reference``, else 0.0."""
        if request.reference is None:
            raise ScoringError(
                "MathAnswerVerifier needs the request's reference answer; submit with reference=..."
            )
        out = []
        for completion in completions:
            answer = self._extract(completion.text)
            out.append(
                1.0
                if answer is not None and self._matches(request.id, request.reference, answer)
                else 0.0
            )
        return out

    def equivalent(self, reference: str, answer: str) -> bool:
        """Whether ``answer`` is mathematically ``reference`` (``False`` if math-verify fails)."""
        return self._matches("-", reference, answer)

    def _matches(self, request_id: str, reference: str, answer: str) -> bool:
        # One odd sample must not fail the whole request: an answer math-verify cannot handle
        # is scored as wrong, and the failure is logged so it stays visible.
        try:
            return bool(self._equal(reference, answer))
        except ScoringError as exc:
            log.warning(
                "scoring.verify_failed",
                request_id=request_id,
                answer=answer,
                error=str(exc.__cause__ or exc),
            )
            return False


def _as_math(text: str) -> str:
    # Bare LaTeX (\frac{25}{2}) parses more reliably inside math delimiters.
    return f"${text}$" if "\\" in text and "$" not in text else text
