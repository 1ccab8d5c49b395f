"""The worker pool: ``max_concurrency`` workers taking allocated jobs, one batch at a time.

The batch loop hands each allocated batch over only when the workers have taken the previous
one: at most one allocated batch waits for workers while the next is gathered and allocated,
and the hand-over wakes only as many idle workers as there are new jobs (no thundering herd).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator

import anyio

from howhard.scheduler.admission import Job

__all__ = ["WorkerPool"]


class WorkerPool:
    """Runs ``execute(job)`` for handed-over jobs, in as many workers as the scheduler starts."""

    def __init__(self, execute: Callable[[Job], Awaitable[None]]) -> None:
        self._execute = execute
        self._ready: deque[Job] = deque()
        self._idle: deque[anyio.Event] = deque()
        self._closed = False
        self.event_type: type[anyio.Event] = anyio.Event
        """The async backend's event class (the scheduler resolves it once, at start)."""
        self._drained = anyio.Event()

    def start(self, event_type: type[anyio.Event]) -> None:
        """Bind the pool to the running async backend (call before the workers start)."""
        self.event_type = event_type
        self._drained = event_type()

    async def hand_over(self, jobs: Iterable[tuple[Job, int]]) -> None:
        """Queue ``(job, budget)`` pairs once the previous batch has been taken, then wake."""
        while self._ready:
            await self._drained.wait()
        for job, budget in jobs:
            if job.resolved:  # the caller gave up while the policy ran
                continue
            job.budget = budget
            job.dispatched = True
            self._ready.append(job)
        self._wake(len(self._ready))

    def close(self) -> None:
        """No more hand-overs: workers finish what is queued and return."""
        self._closed = True
        self._wake()

    def drain(self) -> Iterator[Job]:
        """Take every job still queued (after cancellation: to fail them)."""
        while self._ready:
            yield self._ready.popleft()

    def _wake(self, count: int | None = None) -> None:
        idle = self._idle
        for _ in range(len(idle) if count is None else min(count, len(idle))):
            idle.popleft().set()

    async def work(self) -> None:
        """One worker's loop (the scheduler starts ``max_concurrency`` of them)."""
        ready = self._ready
        while True:
            if ready:
                job = ready.popleft()
                if not ready:
                    event, self._drained = self._drained, self.event_type()
                    event.set()
                if not job.resolved:
                    await self._execute(job)
            elif self._closed:
                return
            else:
                wake = self.event_type()
                self._idle.append(wake)
                await wake.wait()
