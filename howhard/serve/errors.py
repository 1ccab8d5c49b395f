"""HTTP errors in OpenAI's format, and the one mapping from ``howhard.errors`` to them.

Body: ``{"error": {"message", "type", "param", "code"}}``, as OpenAI's API and its clients
expect. Statuses:

====  ===========================================================================
400   invalid request (a field of the body, or a check of the scheduler's submit)
401   missing or unknown API key (the message does not say which)
404   unknown model or route
413   body larger than ``server.max_body_bytes``
429   quota exceeded, tenant rate or concurrency limit (``Retry-After`` where waiting helps)
500   the server's own failure (policy, scorer)
502   the model backend failed
503   queue full, shutting down, backend or quota store unavailable (``Retry-After``)
504   the request's deadline passed
====  ===========================================================================
"""

from __future__ import annotations

import json
import math
import re

from howhard.errors import (
    BackendError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    HowhardError,
    InvalidRequest,
    LedgerUnavailable,
    QueueFull,
    QuotaExceeded,
    RateLimited,
    RequestTimeout,
    SchedulerClosed,
    ScoringError,
)

__all__ = ["ApiError", "from_exception"]

_FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*) (?:must|is|has)\b")


class ApiError(Exception):
    """An error response: status, OpenAI error fields and optional ``Retry-After`` seconds."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.retry_after_s = retry_after_s

    def body(self) -> bytes:
        """The JSON body."""
        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return json.dumps({"error": error}).encode()

    def headers(self) -> dict[str, str]:
        """Extra response headers (``Retry-After`` in whole seconds, at least 1)."""
        if self.retry_after_s is None:
            return {}
        return {"retry-after": str(max(1, math.ceil(self.retry_after_s)))}


def from_exception(exc: BaseException, *, quota_window_s: float | None = None) -> ApiError:
    """The response for an exception raised while serving a request.

    ``quota_window_s`` is the tenant's quota window: after it, everything spent in it has
    expired, so it bounds the wait after ``QuotaExceeded`` (without a window, waiting cannot
    help and no ``Retry-After`` is sent).
    """
    if isinstance(exc, ApiError):
        return exc
    message = str(exc)
    if isinstance(exc, InvalidRequest):
        match = _FIELD.match(message)
        return ApiError(400, message, param=match.group(1) if match else None)
    if isinstance(exc, QuotaExceeded):
        return ApiError(
            429,
            message,
            type="insufficient_quota",
            code="quota_exceeded",
            retry_after_s=quota_window_s,
        )
    if isinstance(exc, QueueFull):
        return ApiError(503, message, type="server_error", code="queue_full", retry_after_s=1.0)
    if isinstance(exc, SchedulerClosed):
        return ApiError(503, message, type="server_error", code="shutting_down", retry_after_s=5.0)
    if isinstance(exc, LedgerUnavailable):
        # Fail closed: nothing ran; another replica cannot help while the store is down.
        return ApiError(
            503, message, type="server_error", code="quota_store_unavailable", retry_after_s=1.0
        )
    if isinstance(exc, RequestTimeout):
        return ApiError(504, message, type="timeout", code="deadline_exceeded")
    if isinstance(exc, BackendRejected):
        return ApiError(400, f"the model backend rejected the request: {message}")
    if isinstance(exc, BackendTimeout):
        return ApiError(504, message, type="timeout", code="backend_timeout")
    if isinstance(exc, RateLimited | BackendUnavailable):
        retry = getattr(exc, "retry_after", None)
        return ApiError(
            503,
            message,
            type="server_error",
            code="backend_unavailable",
            retry_after_s=retry if retry else 1.0,
        )
    if isinstance(exc, BackendError):
        return ApiError(502, message, type="server_error", code="backend_error")
    if isinstance(exc, ScoringError):
        return ApiError(500, message, type="server_error", code="scoring_error")
    if isinstance(exc, HowhardError):
        return ApiError(500, message, type="server_error", code=type(exc).__name__)
    return ApiError(500, "internal server error", type="server_error", code="internal_error")
