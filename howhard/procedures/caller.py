"""The retrying caller: backend calls with retries, a deadline and usage accounting.

The context a procedure runs in (it implements :class:`howhard.procedures.Context`), and the
same retry loop ``howhard collect`` samples through. Deadlines come from the enclosing cancel
scope, so a caller under ``anyio.fail_after`` never sleeps past it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

import anyio

from howhard.backends.base import Backend
from howhard.config import Price, RetryConfig
from howhard.errors import BackendError, RetryableError
from howhard.procedures.accounting import check_generation, prompt_token_bound
from howhard.procedures.containment import contain, describe
from howhard.procedures.retry import backoff_delay
from howhard.types import Generation, GenerationParams, Usage

__all__ = ["CallContext", "EventLog", "RetryingCaller"]

_DEFAULT_RETRY = RetryConfig()
_FREE = Price()


class EventLog(Protocol):
    """Where the caller reports a retry (``backend.retry``): the scheduler's event hub
    (:class:`howhard.scheduler.events.Events`) or any structlog logger."""

    def info(self, name: str, **fields: Any) -> Any:
        """Emit the event ``name`` at info level."""
        ...


class RetryingCaller:
    """Implements ``howhard.procedures.Context`` for one request (or one collected request).

    Each ``generate`` retries ``RetryableError`` with backoff up to ``retry.max_attempts``
    (deadlines come from the enclosing cancel scope; a backoff that would end past the deadline
    re-raises the error instead of sleeping); other backend errors fail fast. Anything else a
    backend raises (a stray cancellation and the scheduler's own error types included) is
    translated to ``BackendError``. Usage (tokens and priced cost) of answered calls, checked
    and bounded by :func:`~howhard.procedures.accounting.check_generation`, accumulates in
    ``usage``; ``units`` is left to the caller. ``prompt_overhead_tokens`` bounds the prompt
    tokens a reply may claim (as the scheduler's cost model reserves them); ``deadline`` (on
    anyio's clock) is the request's, when something other than an enclosing scope enforces it.
    """

    __slots__ = (
        "_backend",
        "_completion_tokens",
        "_cost_micros",
        "_deadline",
        "_log",
        "_params",
        "_price",
        "_prompt_overhead",
        "_prompt_tokens",
        "_random",
        "_retry",
        "attempts",
        "calls",
        "violations",
    )

    def __init__(
        self,
        backend: Backend,
        params: GenerationParams,
        *,
        retry: RetryConfig = _DEFAULT_RETRY,
        price: Callable[[str], Price] = lambda model: _FREE,
        rng: random.Random | None = None,
        log: EventLog | None = None,
        prompt_overhead_tokens: int = 64,
        deadline: float = math.inf,
    ) -> None:
        self._backend = backend
        self._params = params
        self._retry = retry
        self._price = price
        self._random = rng or random.Random()
        self._log = log
        self._prompt_tokens = self._completion_tokens = 0
        self._cost_micros = 0
        self._prompt_overhead = prompt_overhead_tokens
        self._deadline = deadline
        self.attempts = 0
        """Backend calls made, retries included."""
        self.calls = 0
        """Backend calls whose usage was counted (answered, or counted at their worst case)."""
        self.violations = 0
        """Replies whose figures were invalid or over their bounds (see ``accounting``)."""

    @property
    def usage(self) -> Usage:
        """Tokens and priced cost of the successful calls so far (``units`` left at 0)."""
        return self.usage_with_units(0)

    @property
    def prompt_tokens(self) -> int:
        """Prompt tokens of the successful calls so far."""
        return self._prompt_tokens

    @property
    def completion_tokens(self) -> int:
        """Generated tokens of the successful calls so far."""
        return self._completion_tokens

    @property
    def cost_micros(self) -> int:
        """Priced cost of the successful calls so far, in integer micro-units (exact sums)."""
        return self._cost_micros

    def usage_with_units(self, units: int) -> Usage:
        """``usage`` with ``units`` filled in (one object, built once per request)."""
        return Usage(
            prompt_tokens=self._prompt_tokens,
            completion_tokens=self._completion_tokens,
            units=units,
            cost=self._cost_micros / 1_000_000,
        )

    @property
    def backend(self) -> Backend:
        """The default backend."""
        return self._backend

    @property
    def params(self) -> GenerationParams:
        """The request's sampling parameters."""
        return self._params

    @property
    def deadline(self) -> float:
        """When the request times out (``anyio.current_time()`` clock; ``inf``: never).

        The scheduler times requests with one timer each rather than a cancel scope, so
        procedures that plan around the deadline read it here."""
        return self._deadline

    async def generate(self, prompt: str, *, n: int, backend: Backend | None = None) -> Generation:
        """``n`` samples of ``prompt`` from ``backend`` (default: this context's), with retries.

        The reply is checked and bounded (:mod:`howhard.procedures.accounting`) before its
        usage is counted; a reply with invalid figures counts as the call's worst case.
        """
        target = backend if backend is not None else self._backend
        model = _model_name(target)
        attempt = 0
        while True:
            attempt += 1
            self.attempts += 1
            started = time.monotonic()
            try:
                with contain(partial(_foreign, model), passes=_BACKEND_PASSES):
                    reply = await target.generate(prompt, n=n, params=self._params)
            except RetryableError as exc:
                if attempt >= self._retry.max_attempts:
                    raise
                delay = backoff_delay(attempt, exc, self._retry, self._random.random)
                deadline = min(self._deadline, anyio.current_effective_deadline())
                if delay is None or anyio.current_time() + delay >= deadline:
                    # The server asked for a longer wait than max_backoff_s, or the retry could
                    # only start after the deadline: waiting would hold the worker and the
                    # reservation for nothing. Report the real cause now.
                    raise
                if self._log is not None:
                    self._log.info(
                        "backend.retry",
                        model=model,
                        attempt=attempt,
                        delay_s=round(delay, 4),
                        error=type(exc).__name__,
                    )
                await anyio.sleep(delay)
                continue
            max_tokens = self._params.max_tokens
            limit = self._prompt_limit(prompt, reply)
            try:
                checked = check_generation(
                    reply, n=n, max_tokens=max_tokens, prompt_limit=limit, model=model
                )
            except BackendError:
                # Invalid figures say nothing true about what was generated: count the call's
                # worst case (the ledger caps it at the reservation).
                self.violations += 1
                self._count(target, limit, n * max_tokens, started)
                raise
            if checked.clamped:
                self.violations += 1
                if self._log is not None:
                    self._log.info("backend.usage_bounded", model=model, bounded=checked.clamped)
            self._count(target, checked.prompt_tokens, checked.completion_tokens, started)
            return checked.generation

    def _prompt_limit(self, prompt: str, reply: object) -> int:
        """The most prompt tokens ``reply`` may claim (cheaply, when it plainly claims fewer)."""
        chars = len(prompt) + self._prompt_overhead  # <= the UTF-8 bound: no encoding needed
        claimed = getattr(reply, "prompt_tokens", None)
        if type(claimed) is int and claimed <= chars:
            return chars
        return prompt_token_bound(prompt, self._prompt_overhead)

    def _count(
        self, target: Backend, prompt_tokens: int, completion_tokens: int, started: float
    ) -> None:
        self.calls += 1
        self._prompt_tokens += prompt_tokens
        self._completion_tokens += completion_tokens
        self._cost_micros += self._price(_model_name(target)).cost_micros(
            prompt_tokens, completion_tokens, time.monotonic() - started
        )


_BACKEND_PASSES: tuple[type[BaseException], ...] = (BackendError,)


def _foreign(model: str, exc: BaseException) -> BackendError:
    return BackendError(
        f"backend {model!r} raised {describe(exc)}; backends should translate their errors "
        "into howhard.errors (BackendError and its subclasses)"
    )


def _model_name(backend: Backend) -> str:
    try:
        model = backend.model
    except Exception:
        return type(backend).__name__
    return model if isinstance(model, str) else type(backend).__name__


CallContext = RetryingCaller
"""The name the scheduler's context had before it became a reusable caller."""
