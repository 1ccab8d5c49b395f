"""Backoff for retryable backend errors: exponential, capped, with full jitter.

Kept as a dozen lines here rather than a dependency (runtime dependencies stay numpy, pydantic,
anyio and structlog), and because it must honour ``RateLimited.retry_after`` and run on anyio's
sleep so deadlines (cancel scopes) interrupt it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from howhard.config import RetryConfig
from howhard.errors import RateLimited, RetryableError

__all__ = ["backoff_delay"]


def backoff_delay(
    attempt: int,
    error: RetryableError,
    config: RetryConfig,
    uniform: Callable[[], float],
) -> float | None:
    """Seconds to wait after failed ``attempt`` (1-based) before the next one, or ``None``.

    The bound doubles per attempt from ``initial_backoff_s`` up to ``max_backoff_s``; with
    ``jitter`` the delay is drawn uniformly from ``[0, bound]`` (``uniform`` returns ``[0, 1)``)
    so synchronized clients spread out. A server's ``retry_after`` hint is a floor: retrying
    earlier than it asked only earns another 429. A hint longer than ``max_backoff_s``
    (``Retry-After: 86400``, or ``inf``) is ``None``: not worth waiting for, so the caller gives
    up at once and the error carries the hint. A NaN hint is no hint.
    """
    bound = min(config.max_backoff_s, config.initial_backoff_s * 2.0 ** (attempt - 1))
    delay = bound * uniform() if config.jitter else bound
    hint = error.retry_after if isinstance(error, RateLimited) else None
    if hint is None or math.isnan(hint):
        return delay
    if hint > config.max_backoff_s:
        return None
    return max(delay, hint)
