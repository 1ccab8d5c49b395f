"""MathAnswerVerifier: checks a completion's final answer against the reference with math-verify.

Equivalent forms count as equal (``12.5`` = ``\\frac{25}{2}``, ``x=2`` = ``2``). ``math-verify``
(and sympy under it) is imported on first use; install it with ``pip install 'howhard[math]'``.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

import structlog

from howhard.errors import ConfigError, ScoringError, missing_extra
from howhard.scoring.base import AnswerExtractor
from howhard.scoring.extract import extract_final_answer
from howhard.scoring.worker import in_worker_process
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
    When math-verify fails on one sample's answer, or takes longer than ``timeout_s``, that
    sample scores 0.0 and a ``scoring.verify_failed`` warning names the request; the other
    samples are scored normally.

    ``score`` never runs math-verify on the event loop: sympy can spend minutes on one answer
    (a power tower such as ``9^9^9^9``) without yielding, which would stall every other request
    and its deadline. With ``isolation="process"`` (the default) each comparison runs in a worker
    process under math-verify's own timeout and a hard ``timeout_s`` limit (the process is
    killed past it, or when the request is cancelled); ``"inline"`` runs on the caller's thread
    (for offline tools that score one answer at a time). ``equivalent`` is synchronous and
    always inline, under math-verify's timeout on the main thread.
    """

    def __init__(
        self,
        extractor: AnswerExtractor = extract_final_answer,
        *,
        timeout_s: int = 5,
        cache_size: int = 4096,
        isolation: Literal["process", "inline"] = "process",
    ) -> None:
        if isolation not in ("process", "inline"):
            raise ConfigError(f"isolation must be 'process' or 'inline', got {isolation!r}")
        self._extract = extractor
        self._timeout_s = timeout_s
        self._isolation = isolation
        self._equal = functools.lru_cache(maxsize=cache_size)(self._compare)
        self._cache_size = cache_size
        self._async_cache: OrderedDict[tuple[str, str], bool] = OrderedDict()

    def _compare(self, reference: str, answer: str) -> bool:
        timeout = self._timeout_s if threading.current_thread() is threading.main_thread() else None
        return _compare(reference, answer, timeout)

    async def score(self, request: Request, completions: Sequence[Completion]) -> list[float]:
        """1.0 for each completion whose final answer matches ``request.reference``, else 0.0."""
        if request.reference is None:
            raise ScoringError(
                "MathAnswerVerifier needs the request's reference answer; submit with reference=..."
            )
        out = []
        for completion in completions:
            answer = self._extract(completion.text)
            if answer is None:
                out.append(0.0)
                continue
            if self._isolation == "inline":
                equal = self._matches(request.id, request.reference, answer)
            else:
                equal = await self._matches_off_loop(request.id, request.reference, answer)
            out.append(1.0 if equal else 0.0)
        return out

    async def _matches_off_loop(self, request_id: str, reference: str, answer: str) -> bool:
        key = (reference, answer)
        cache = self._async_cache
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        error: BaseException | None = None
        equal = False
        try:
            equal = await in_worker_process(
                _compare, reference, answer, self._timeout_s, timeout_s=self._timeout_s
            )
        except Exception as exc:  # sympy's assorted errors, a timeout, a worker that died
            error = exc
        if error is not None:
            log.warning(
                "scoring.verify_failed",
                request_id=request_id,
                answer=answer[:200],
                error=f"{type(error).__name__}: {error}",
            )
            equal = False
        cache[key] = equal
        if len(cache) > self._cache_size:
            cache.popitem(last=False)
        return equal

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


def _compare(reference: str, answer: str, timeout: int | None) -> bool:
    """math-verify equivalence (module level: worker processes import and call it by name)."""
    mv = _math_verify()
    try:
        gold = mv.parse(_as_math(reference), parsing_timeout=timeout)
        pred = mv.parse(_as_math(answer), parsing_timeout=timeout)
        return bool(mv.verify(gold, pred, timeout_seconds=timeout))
    except Exception as exc:  # math-verify raises assorted sympy errors on odd input
        raise ScoringError(
            f"math-verify failed comparing answer {answer!r} with reference {reference!r}"
        ) from exc


def _as_math(text: str) -> str:
    # Bare LaTeX (\frac{25}{2}) parses more reliably inside math delimiters.
    return f"${text}$" if "\\" in text and "$" not in text else text
