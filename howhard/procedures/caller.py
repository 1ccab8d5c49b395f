"""The retrying caller: backend calls with retries, a deadline and usage accounting.

The context a procedure runs in (it implements :class:`howhard.procedures.Context`), and the
same retry loop ``howhard collect`` samples through. Deadlines come from the enclosing cancel
scope, so a caller under ``anyio.fail_after`` never sleeps past it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, Protocol

import anyio

from howhard.backends.base import Backend
from howhard.config import Price, RetryConfig
from howhard.errors import BackendError, HowhardError, RetryableError
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
    re-raises the error instead of sleeping); other backend errors fail fast. Any other
    exception a backend raises is translated to ``BackendError``. Usage (tokens and priced cost)
    of successful calls accumulates in ``usage``; ``units`` is left to the caller.
    """

    __slots__ = (
        "_backend",
        "_completion_tokens",
        "_cost_micros",
        "_log",
        "_params",
        "_price",
        "_prompt_tokens",
        "_random",
        "_retry",
        "attempts",
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
    ) -> None:
        self._backend = backend
        self._params = params
        self._retry = retry
        self._price = price
        self._random = rng or random.Random()
        self._log = log
        self._prompt_tokens = self._completion_tokens = 0
        self._cost_micros = 0
        self.attempts = 0
        """Backend calls made, retries included."""

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

    async def generate(self, prompt: str, *, n: int, backend: Backend | None = None) -> Generation:
        """``n`` samples of ``prompt`` from ``backend`` (default: this context's), with retries."""
        target = backend if backend is not None else self._backend
        attempt = 0
        while True:
            attempt += 1
            self.attempts += 1
            started = time.monotonic()
            try:
                generation = await target.generate(prompt, n=n, params=self._params)
            except RetryableError as exc:
                if attempt >= self._retry.max_attempts:
                    raise
                delay = backoff_delay(attempt, exc, self._retry, self._random.random)
                if anyio.current_time() + delay >= anyio.current_effective_deadline():
                    # The retry could only start after the deadline: waiting would hold the
                    # worker and the reservation just to time out. Report the real cause now.
                    raise
                if self._log is not None:
                    self._log.info(
                        "backend.retry",
                        model=target.model,
                        attempt=attempt,
                        delay_s=round(delay, 4),
                        error=type(exc).__name__,
                    )
                await anyio.sleep(delay)
                continue
            except HowhardError:
                raise
            except Exception as exc:
                raise BackendError(
                    f"backend {target.model!r} raised {type(exc).__name__}: {exc}; "
                    "backends should translate their errors into howhard.errors"
                ) from exc
            if not isinstance(generation, Generation):
                raise BackendError(
                    f"backend {target.model!r} returned {type(generation).__name__}, not a "
                    "Generation; Backend.generate must return howhard.types.Generation"
                )
            prompt_tokens = generation.prompt_tokens
            completion_tokens = generation.completion_tokens
            if prompt_tokens < 0 or any(c.tokens < 0 for c in generation.completions):
                # Settled as is, negative usage would credit the tenant's quota.
                raise BackendError(
                    f"backend {target.model!r} reported negative token counts (prompt "
                    f"{prompt_tokens}, completions {[c.tokens for c in generation.completions]})"
                    "; token counts must be >= 0"
                )
            self._prompt_tokens += prompt_tokens
            self._completion_tokens += completion_tokens
            self._cost_micros += self._price(target.model).cost_micros(
                prompt_tokens, completion_tokens, time.monotonic() - started
            )
            return generation


CallContext = RetryingCaller
"""The name the scheduler's context had before it became a reusable caller."""
