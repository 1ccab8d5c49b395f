"""Worker processes for scoring that may not yield: math-verify, sympy, anything CPU-bound.

Run on the event loop, such work stalls every other request and its deadline; in a thread it
cannot be stopped. :func:`in_worker_process` runs a module-level function in one of anyio's
worker processes and kills that process when the time limit passes or the caller is cancelled.
A script whose scorers use it needs an ``if __name__ == "__main__":`` guard: worker processes
load the parent's main module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["WORKER_START_S", "in_worker_process"]

T = TypeVar("T")

WORKER_START_S = 2.0
"""Extra seconds a call gets over its limit: a fresh worker imports its modules first."""


async def in_worker_process(function: Callable[..., T], *args: Any, timeout_s: float) -> T:
    """``function(*args)`` in a worker process; ``TimeoutError`` past ``timeout_s`` (killed).

    ``function`` must be importable by name (module level) and its arguments picklable.
    """
    import anyio.to_process

    with anyio.move_on_after(timeout_s + WORKER_START_S):
        return await anyio.to_process.run_sync(function, *args, cancellable=True)
    raise TimeoutError(f"{getattr(function, '__name__', function)} took longer than {timeout_s} s")
