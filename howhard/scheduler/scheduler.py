"""The Scheduler: ``await scheduler.submit(query)`` behind micro-batching, policies and quotas.

It composes named stages, each its own module (``docs/architecture.md``): admission validates a
``submit`` into a job (:mod:`.admission`) → a bounded queue → the batcher closes a micro-batch
(:mod:`.batcher`) → the policy splits the batch's budget (:mod:`.allocation`: the carry rule and
one :class:`~howhard.types.BudgetBounds`) → the worker pool (:mod:`.workers`), at most
``max_concurrency`` at once, executes each job (:mod:`.execution`: reserve the worst case the
cost model prices (:mod:`.cost`), run the procedure with retries and a deadline, settle) → the
caller's future resolves. Events go through :mod:`.events`. This module keeps the lifecycle, the
queue and the single resolution of every job.

Every ``submit`` resolves exactly once: with a ``Result`` or a typed exception, under backend
faults, deadlines, caller cancellation and shutdown. All tasks belong to one task group owned by
the ``async with`` block.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import random
import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from howhard.backends.base import Backend
from howhard.config import BatchingConfig, Price, RetryConfig, SchedulerConfig
from howhard.errors import QueueFull, RequestTimeout, SchedulerClosed, UsageError
from howhard.ledger import InMemoryLedger, Ledger, TenantSpend
from howhard.policies.base import Policy
from howhard.policies.builtin import UniformPolicy
from howhard.procedures.base import Procedure
from howhard.procedures.self_consistency import SelfConsistency
from howhard.scheduler.admission import Admission, Admitted, Job, Submission, submitted_at
from howhard.scheduler.allocation import Allocation
from howhard.scheduler.batcher import BudgetCarry, next_batch
from howhard.scheduler.cost import CostModel
from howhard.scheduler.events import Events, Observer
from howhard.scheduler.execution import Execution
from howhard.scheduler.stats import SchedulerState, SchedulerStats
from howhard.scheduler.workers import WorkerPool
from howhard.types import GenerationParams, Request, Result

__all__ = ["Scheduler", "SchedulerState", "SchedulerStats"]

_ABANDON_GRACE_S = 0.05
"""How long past its deadline a caller waits for a running request to wind down."""

_INSIDE: contextvars.ContextVar[Scheduler | None] = contextvars.ContextVar(
    "howhard_scheduler_inside", default=None
)
"""The scheduler whose own task (batch loop, worker: plug-in code included) is running."""


def _current_token() -> object:
    """The running event loop (asyncio's directly: cheap on the hot path), or ``None``."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    try:
        return anyio.lowlevel.current_token()  # trio
    except Exception:  # no event loop running in this thread
        return None


class Scheduler:
    """Micro-batching, budget-allocating, quota-enforcing front door to a backend.

    ``async with Scheduler(backend=..., policy=..., procedure=..., average_budget=4.0) as s:``
    then ``result = await s.submit("What is 17 * 23?", tenant="team-a")``.

    Keyword arguments override the matching ``SchedulerConfig`` fields (``config=`` supplies the
    rest). Defaults: ``UniformPolicy``, ``SelfConsistency`` and an unlimited ``InMemoryLedger``.
    The backend belongs to the caller: the scheduler does not close it. ``observers`` receive
    every event the scheduler emits (see ``howhard.scheduler.events``), e.g. a metrics exporter.
    """

    def __init__(
        self,
        *,
        backend: Backend,
        policy: Policy | None = None,
        procedure: Procedure | None = None,
        average_budget: float | None = None,
        batching: BatchingConfig | None = None,
        max_budget: int | None = None,
        min_budget: int | None = None,
        max_queue: int | None = None,
        max_concurrency: int | None = None,
        params: GenerationParams | None = None,
        retry: RetryConfig | None = None,
        request_timeout_s: float | None = None,
        prices: Mapping[str, Price] | None = None,
        ledger: Ledger | None = None,
        config: SchedulerConfig | None = None,
        seed: int | None = None,
        observers: Iterable[Observer] = (),
    ) -> None:
        self.config = SchedulerConfig.merged(
            config,
            average_budget=average_budget,
            batching=batching,
            max_budget=max_budget,
            min_budget=min_budget,
            max_queue=max_queue,
            max_concurrency=max_concurrency,
            params=params,
            retry=retry,
            request_timeout_s=request_timeout_s,
            prices=prices,
        )
        self._backend = backend
        self._bounds = self.config.bounds
        self._log = Events("howhard.scheduler", observers)
        self._allocation = Allocation(
            policy if policy is not None else UniformPolicy(),
            self._bounds,
            BudgetCarry(self.config.average_budget, self.config.effective_carry_limit),
            self._log,
            timeout_s=self.config.policy_timeout_s,
        )
        self._procedure: Procedure = procedure if procedure is not None else SelfConsistency()
        self._ledger: Ledger = ledger if ledger is not None else InMemoryLedger()
        # Deprecated: InMemoryLedger(prices=...) kept its own table; honour it if ours is empty.
        table = self.config.prices or getattr(self._ledger, "prices", None) or {}
        self._cost = CostModel(
            self._procedure,
            backend,
            prices=table,
            prompt_overhead_tokens=self.config.prompt_overhead_tokens,
        )
        self._admission = Admission(self.config, self._ledger, self._cost)
        self._execution = Execution(
            backend=backend,
            procedure=self._procedure,
            ledger=self._ledger,
            cost=self._cost,
            config=self.config,
            rng=random.Random(seed),
            log=self._log,
            give_back=self._allocation.carry.give_back,
        )
        self._state = SchedulerState.CREATED
        self._closed = anyio.Event()
        self._tg: TaskGroup | None = None
        self._work_scope: anyio.CancelScope | None = None
        self._send: MemoryObjectSendStream[Job] | None = None
        self._receive: MemoryObjectReceiveStream[Job] | None = None
        self._workers = WorkerPool(self._execute)
        # anyio.Event() and anyio.CancelScope() look the async backend up on every call; the
        # hot path (one of each per request) uses the backend's classes, resolved at start.
        self._event_type: type[anyio.Event] = anyio.Event
        self._scope_type: type[anyio.CancelScope] = anyio.CancelScope
        self._thread: int | None = None
        self._loop: object = None
        self._in_flight = 0
        self._submitted = 0
        self._completed = 0
        self._failed = 0
        self._cancelled = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def state(self) -> SchedulerState:
        """Where the scheduler is in its lifecycle."""
        return self._state

    @property
    def ledger(self) -> Ledger:
        """The ledger charging this scheduler's requests."""
        return self._ledger

    async def __aenter__(self) -> Scheduler:
        if self._state is not SchedulerState.CREATED:
            raise UsageError(
                f"a Scheduler can be started once (it is {self._state.value}); create a new one"
            )
        self._send, self._receive = anyio.create_memory_object_stream[Job](
            max_buffer_size=self.config.max_queue
        )
        self._event_type = type(anyio.Event())
        self._scope_type = self._execution.scope_type = type(anyio.CancelScope())
        self._thread = threading.get_ident()
        self._loop = _current_token()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        try:
            await self._tg.start(self._run)
        except BaseException as exc:
            self._cancel_work()
            if not await self._tg.__aexit__(type(exc), exc, exc.__traceback__):
                raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None  # entered; not input validation
        if exc_type is None:
            try:
                await self.close()
            except BaseException as close_exc:
                self._cancel_work()
                if not await self._tg.__aexit__(
                    type(close_exc), close_exc, close_exc.__traceback__
                ):
                    raise
                return None
            return await self._tg.__aexit__(None, None, None)
        # The body failed: don't wait for queued work, cancel it (every job still resolves).
        self._cancel_work()
        if isinstance(exc, anyio.get_cancelled_exc_class()):
            return await self._tg.__aexit__(exc_type, exc, tb)
        # Let the body's own exception propagate as itself, not wrapped in an ExceptionGroup.
        await self._tg.__aexit__(None, None, None)
        return None

    async def close(self) -> None:
        """Stop accepting requests, finish everything already queued, and wait for it.

        Callers blocked in ``submit`` waiting for queue space get ``SchedulerClosed``. Called
        from inside a request this scheduler runs (a backend, a scorer, a policy), it would wait
        for itself: ``UsageError`` (``aclose(cancel=True)`` from there cancels without waiting).
        """
        self._check_caller("close")
        if _INSIDE.get() is self and self._state is not SchedulerState.CLOSED:
            raise UsageError(
                "close() was called from inside a request this scheduler runs (a backend, "
                "scorer, procedure or policy call), so it would wait for itself; call it from "
                "outside, or use aclose(cancel=True) there to cancel without waiting"
            )
        if self._state is SchedulerState.CREATED:
            self._state = SchedulerState.CLOSED
            self._closed.set()
            return
        if self._state is SchedulerState.RUNNING:
            self._state = SchedulerState.CLOSING
            assert self._send is not None
            self._send.close()
        await self._closed.wait()

    async def aclose(self, *, cancel: bool = False) -> None:
        """Close; with ``cancel=True`` running and queued requests fail with ``SchedulerClosed``.

        Cancelled work is refunded to the ledger.
        """
        if cancel:
            self._check_caller("aclose")
            self._cancel_work()
            if _INSIDE.get() is self:
                return  # this task is among those cancelled: it cannot wait for them
        await self.close()

    def _cancel_work(self) -> None:
        if self._state in (SchedulerState.RUNNING, SchedulerState.CLOSING):
            self._state = SchedulerState.CLOSING
            if self._send is not None:
                self._send.close()
            if self._work_scope is not None:
                self._work_scope.cancel()

    async def _run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        assert self._receive is not None and self._send is not None
        _INSIDE.set(self)  # this task's context, copied into the batch loop and every worker
        self._workers.start(self._event_type)
        try:
            # The scheduler's own scope: aclose(cancel=True) cancels it without touching the
            # caller's code in the body of `async with`.
            with anyio.CancelScope() as self._work_scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._batch_loop)
                    for _ in range(self.config.max_concurrency):
                        tg.start_soon(self._workers.work)
                    self._state = SchedulerState.RUNNING
                    task_status.started()
        finally:
            # Only after cancellation can jobs remain: fail them, then break the queue so
            # callers still blocked on it get SchedulerClosed too.
            self._send.close()
            for job in self._workers.drain():
                self._resolve(job, error=self._closed_error(job))
            while True:
                try:
                    job = self._receive.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
                self._resolve(job, error=self._closed_error(job))
            self._receive.close()
            self._state = SchedulerState.CLOSED
            self._closed.set()
            self._log.debug("scheduler.closed", **self._counters())

    # ------------------------------------------------------------------ submit

    async def submit(
        self,
        prompt_or_request: str | Request,
        *,
        tenant: str | None = None,
        reference: str | None = None,
        params: GenerationParams | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Result:
        """Submit a query and wait for its ``Result`` (waits for queue space: backpressure).

        Options override the ``Request``'s fields; ``timeout_s`` overrides
        ``request_timeout_s`` (queueing and retries included). Raises ``SchedulerClosed``,
        ``QuotaExceeded``, ``RequestTimeout``, ``PolicyError`` or a ``BackendError``; cancelling
        the caller cancels the request's work and refunds its reservation.
        """
        submission = Submission(prompt_or_request, tenant, reference, params, metadata, timeout_s)
        return await self._submit(submission, wait_for_space=True)

    async def submit_nowait(
        self,
        prompt_or_request: str | Request,
        *,
        tenant: str | None = None,
        reference: str | None = None,
        params: GenerationParams | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Result:
        """Like ``submit`` but never waits for queue space: raises ``QueueFull`` at once."""
        submission = Submission(prompt_or_request, tenant, reference, params, metadata, timeout_s)
        return await self._submit(submission, wait_for_space=False)

    async def _new_job(self, admitted: Admitted, deadline: float) -> Job:
        job = await self._admission.admit(admitted, self._event_type(), deadline)
        self._check_running()  # it may have closed while the ledger answered
        self._submitted += 1
        return job

    def _check_caller(self, method: str) -> None:
        """``UsageError`` when called from another thread or event loop than the one it runs on.

        Its events and streams belong to that loop: woken from another, a caller would never
        wake up.
        """
        if self._thread is None:
            return
        if threading.get_ident() != self._thread or _current_token() != self._loop:
            raise UsageError(
                f"Scheduler.{method}() was called from another thread or event loop than the one "
                "running the scheduler; call it from that loop (from a thread: "
                "anyio.from_thread.run(scheduler.submit, ...), with a token from that loop)"
            )

    def _check_running(self) -> None:
        if self._state is not SchedulerState.RUNNING:
            raise SchedulerClosed(
                f"the scheduler is {self._state.value}; submit inside `async with Scheduler(...)`"
            )

    async def _submit(self, submission: Submission, *, wait_for_space: bool) -> Result:
        """Admit, enqueue and wait for one call: the body of ``submit`` and ``submit_nowait``."""
        self._check_caller("submit")
        self._check_running()
        admitted = self._admission.check(submission)  # nothing is counted before this passes
        timeout = admitted.timeout_s
        job: Job | None = None
        try:
            if timeout is None:
                job = await self._new_job(admitted, math.inf)
                await self._send_and_wait(job, wait_for_space=wait_for_space)
            else:
                # The deadline covers asking the ledger, waiting for queue space, in the
                # queue, behind the policy and the execution: this one timer enforces all of
                # it (the execution's scope has none of its own; one timer per request is what
                # keeps submit cheap).
                with self._scope_type(deadline=anyio.current_time() + timeout) as scope:
                    job = await self._new_job(admitted, scope.deadline)
                    await self._send_and_wait(job, wait_for_space=wait_for_space)
                if job is None:  # the ledger did not answer in time: nothing was admitted
                    raise RequestTimeout(
                        f"the ledger did not admit the request within timeout_s={timeout}; "
                        "check the quota store, or raise the timeout"
                    )
                if not job.resolved and job.scope is not None:
                    # Running: cancel its work, which resolves it (closing its reservation). A
                    # plug-in that ignores cancellation (blocking work in a thread, a shielded
                    # wait) must not hold the caller past its deadline: after a short grace the
                    # caller is answered, and the work closes its reservation when it ends.
                    job.expired = True
                    job.scope.cancel()
                    with self._scope_type(deadline=anyio.current_time() + _ABANDON_GRACE_S):
                        await job.done.wait()
                if not job.resolved:
                    self._resolve(job, error=job.timeout_error())
        except BaseException:
            # The caller was cancelled (or interrupted): its request must not run on.
            if job is not None:
                self._cancel(job)
            raise
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    async def _send_and_wait(self, job: Job, *, wait_for_space: bool) -> None:
        assert self._send is not None
        try:
            try:
                self._send.send_nowait(job)
            except anyio.WouldBlock:
                if not wait_for_space:
                    self._resolve(
                        job,
                        error=QueueFull(
                            f"the submission queue is full (max_queue="
                            f"{self.config.max_queue}); retry later, use submit() to wait, "
                            "or raise max_queue"
                        ),
                    )
                else:
                    await self._send.send(job)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            # Closed while this caller waited for queue space.
            self._resolve(job, error=self._closed_error(job))
        await job.done.wait()

    def _closed_error(self, job: Job) -> SchedulerClosed:
        return job.closed_error(self._state.value)

    def _cancel(self, job: Job) -> None:
        if job.resolved:
            return
        job.resolved = True
        job.cancelled = True
        self._cancelled += 1
        if job.scope is not None:
            job.scope.cancel()

    def _resolve(
        self, job: Job, result: Result | None = None, error: BaseException | None = None
    ) -> None:
        if job.resolved:
            return
        job.resolved = True
        job.result = result
        job.error = error
        if error is None:
            self._completed += 1
        else:
            self._failed += 1
        job.done.set()

    # ------------------------------------------------------------------ batching

    async def _batch_loop(self) -> None:
        assert self._receive is not None
        batching = self.config.batching
        try:
            while True:
                # Filled in place: if the scheduler is cancelled while this batch is open (or
                # being allocated), its jobs are off the queue and only this list can fail them.
                batch: list[Job] = []
                try:
                    if (
                        await next_batch(
                            self._receive,
                            max_batch_size=batching.max_batch_size,
                            max_wait_s=batching.max_wait_s,
                            arrival=submitted_at,
                            into=batch,
                        )
                        is None
                    ):
                        return
                    await self._allocate_and_dispatch(batch)
                except BaseException:
                    for job in batch:
                        if not job.dispatched:
                            self._resolve(job, error=self._closed_error(job))
                    raise
        finally:
            self._workers.close()

    async def _allocate_and_dispatch(self, batch: list[Job]) -> None:
        live = [job for job in batch if not job.resolved]
        if not live:
            return
        try:
            requests = [job.request for job in live]
            budgets = await self._allocation.allocate(requests, live[0].started)
        except Exception as exc:
            for job in live:
                self._resolve(job, error=self._allocation.error_for(exc))
            return
        await self._workers.hand_over(zip(live, budgets, strict=True))

    async def _execute(self, job: Job) -> None:
        if job.deadline != math.inf and anyio.current_time() >= job.deadline:
            # Expired while queued: fail without reserving or calling the backend.
            self._resolve(job, error=job.timeout_error())
            return
        result: Result | None = None
        error: BaseException | None = None
        self._in_flight += 1
        try:
            result, error = await self._execution.run(job)
        except anyio.get_cancelled_exc_class():
            # The scheduler itself is being cancelled (aclose(cancel=True)).
            error = self._closed_error(job)
            raise
        finally:
            self._in_flight -= 1
            if not job.cancelled:
                self._resolve(job, result, error)
                self._execution.log_outcome(job, result, error)
                if result is not None:  # after resolving: feedback never delays the caller
                    self._allocation.observe(job.request, result)

    # ------------------------------------------------------------------ observability

    async def spend(self) -> Mapping[str, TenantSpend]:
        """Per-tenant spend as the ledger reports it (settled, in the window, held).

        Async: the ledger may be a store shared by many schedulers.
        """
        return await self._ledger.snapshot()

    def _counters(self) -> dict[str, int]:
        return {
            "submitted": self._submitted,
            "completed": self._completed,
            "failed": self._failed,
            "cancelled": self._cancelled,
            "batches": self._allocation.batches,
        }

    def stats(self) -> SchedulerStats:
        """A snapshot of this scheduler's queue depth, in-flight work and outcomes.

        Synchronous (safe from a signal handler or a metrics scrape); per-tenant spend lives in
        the ledger, which may be shared: read it with :meth:`spend`.
        """
        queued = waiting = 0
        if self._send is not None and self._state is not SchedulerState.CLOSED:
            statistics = self._send.statistics()
            queued = statistics.current_buffer_used
            waiting = statistics.tasks_waiting_send
        return SchedulerStats(
            state=self._state,
            queued=queued,
            waiting_submitters=waiting,
            in_flight=self._in_flight,
            carry=float(self._allocation.carry.carry),
            usage_violations=self._execution.violations,
            **self._counters(),
        )
