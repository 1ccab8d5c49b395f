"""Containment: a call into plug-in code can fail its own request, never the scheduler.

Every call the scheduler makes into code it does not own (a backend's ``generate``, a scorer, a
procedure, a policy and its predictor, a ledger store) goes through :class:`contain`. It keeps
three kinds of plug-in failure inside the request that made the call:

- a **stray cancellation**: ``asyncio.CancelledError`` (anyio's cancellation class on asyncio)
  raised while nothing cancelled the calling task. Left alone it would read as a cancellation
  of the scheduler's own tasks and close it; here it becomes a typed error of that request.
  A real cancellation (a deadline, a caller giving up, ``aclose(cancel=True)``) is re-raised.
- an error of a type **only the scheduler raises** (``SchedulerClosed``, ``QuotaExceeded``,
  ``InvalidRequest``, ``PolicyError``, ``RequestTimeout`` …): passed through unchanged it would
  tell the caller something untrue (that the scheduler closed), so it is wrapped.
- any other ``Exception``: wrapped in the caller's typed error. Other ``BaseException`` subclasses
  (``KeyboardInterrupt``, ``SystemExit``, a real cancellation) mean "stop", and propagate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TypeVar

import anyio

from howhard.errors import HowhardError, Rejected, RequestTimeout, UsageError

__all__ = [
    "RESERVED_ERRORS",
    "cancellation_requested",
    "contain",
    "contained",
    "describe",
    "is_cancellation",
]

T = TypeVar("T")

RESERVED_ERRORS: tuple[type[HowhardError], ...] = (UsageError, Rejected, RequestTimeout)
"""Error types that only the scheduler itself raises; from a plug-in they are wrapped."""


def is_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` is a cancellation (or a group made only of cancellations)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_cancellation(inner) for inner in exc.exceptions)
    return isinstance(exc, asyncio.CancelledError | anyio.get_cancelled_exc_class())


def cancellation_requested() -> bool:
    """Whether the running task has a cancellation pending (so a cancellation is real).

    On asyncio, every cancel scope cancels through ``Task.cancel()``, which counts in
    ``Task.cancelling()``; zero means nobody asked. Elsewhere (trio) a cancellation cannot be
    raised by hand, so it is always taken as real.
    """
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return True
    return task is None or task.cancelling() > 0


def describe(exc: BaseException) -> str:
    """``Type: message`` of ``exc``, for the message of the error that wraps it."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class contain:
    """A guard around plug-in code: ``with contain(wrap, passes=...): ... await plugin()``.

    What the block raises is re-raised only when it is ``passes`` or real. ``passes`` are the
    error types the plug-in may raise as they are (for a backend: ``BackendError``); one of
    :data:`RESERVED_ERRORS` passes only when ``passes`` names it or a subclass of it (a
    ledger's ``QuotaExceeded``), not through a broader type. Any other ``Exception``, and a
    cancellation nobody requested, is raised as ``wrap(exc)`` (chained, so the cause stays
    visible); other ``BaseException`` subclasses propagate. A synchronous context manager, so
    the guard costs no extra coroutine on the hot path.
    """

    __slots__ = ("_passes", "_wrap")

    def __init__(
        self,
        wrap: Callable[[BaseException], HowhardError],
        *,
        passes: tuple[type[BaseException], ...] = (),
    ) -> None:
        self._wrap = wrap
        self._passes = passes

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            return
        if isinstance(exc, Exception):
            if _passes(exc, self._passes):
                return
        elif not (is_cancellation(exc) and not cancellation_requested()):
            return
        raise self._wrap(exc) from exc


async def contained(
    call: Callable[[], Awaitable[T]],
    wrap: Callable[[BaseException], HowhardError],
    *,
    passes: tuple[type[BaseException], ...] = (),
) -> T:
    """``await call()`` under :class:`contain` (for call sites off the hot path)."""
    with contain(wrap, passes=passes):
        return await call()


def _passes(exc: BaseException, passes: tuple[type[BaseException], ...]) -> bool:
    # A reserved type passes only when named itself (a ledger's QuotaExceeded), not when it
    # merely falls under a broader type that passes (HowhardError).
    return any(
        isinstance(exc, kind)
        and (issubclass(kind, RESERVED_ERRORS) or not isinstance(exc, RESERVED_ERRORS))
        for kind in passes
    )
