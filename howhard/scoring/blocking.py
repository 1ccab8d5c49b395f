"""BlockingScorer: synchronous, CPU-heavy scoring run off the event loop under a time limit.

A scorer that computes without awaiting (a reward model's forward pass, a symbolic check, a
test run) holds the event loop, and every other request and deadline with it, for as long as
it computes. Wrapped in :class:`BlockingScorer` it runs in a worker thread instead; past
``timeout_s``, or when its request is cancelled, the request stops waiting for it and fails
with ``ScoringError`` while the loop goes on (the thread is abandoned: it finishes in the
background, since Python cannot stop a thread). For work that must be killed, not abandoned,
use a process, as :class:`~howhard.scoring.MathAnswerVerifier` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import anyio
import anyio.to_thread

from howhard.errors import ConfigError, ScoringError
from howhard.types import Completion, Request

__all__ = ["BlockingScorer"]


class BlockingScorer:
    """A ``Scorer`` running ``function(request, completions) -> scores`` in a worker thread.

    ``timeout_s`` bounds each call; ``limiter`` (an ``anyio.CapacityLimiter``) bounds how many
    run at once (anyio's default thread limiter when ``None``).
    """

    def __init__(
        self,
        function: Callable[[Request, Sequence[Completion]], Sequence[float]],
        *,
        timeout_s: float = 10.0,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        if not callable(function):
            raise ConfigError(f"function must be callable, got {type(function).__name__}")
        if isinstance(timeout_s, bool) or not (
            isinstance(timeout_s, int | float) and math.isfinite(timeout_s) and timeout_s > 0
        ):
            raise ConfigError(
                f"timeout_s must be a finite number of seconds > 0, got {timeout_s!r}"
            )
        self._function = function
        self.timeout_s = float(timeout_s)
        self._limiter = limiter
        self._name = getattr(function, "__name__", type(function).__name__)

    async def score(self, request: Request, completions: Sequence[Completion]) -> list[float]:
        """The function's scores, computed in a worker thread within ``timeout_s``."""
        with anyio.move_on_after(self.timeout_s) as limit:
            scores = await anyio.to_thread.run_sync(
                self._function,
                request,
                tuple(completions),
                abandon_on_cancel=True,
                limiter=self._limiter,
            )
        if limit.cancelled_caught:
            raise ScoringError(
                f"{self._name} did not finish scoring within timeout_s={self.timeout_s}; make it "
                "faster or raise BlockingScorer(timeout_s=...)"
            )
        return list(scores)
