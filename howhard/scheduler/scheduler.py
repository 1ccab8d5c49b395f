"""The Scheduler: ``await scheduler.submit(query)`` behind micro-batching, policies and quotas.

Data flow (see DESIGN.md): ``submit`` puts a job on a bounded queue → the batcher closes a
micro-batch → the policy splits the batch's budget (carry rule in ``batcher``) → workers, at most
``max_concurrency`` at once, reserve each request's worst case in the ledger, run the procedure on
the backend (retries, deadline), settle the actual usage and resolve the caller's future.

Every ``submit`` resolves exactly once: with a ``Result`` or a typed exception, under backend
faults, deadlines, caller cancellation and shutdown. All tasks belong to one task group owned by
the ``async with`` block.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from howhard.backends.base import Backend
from howhard.config import BatchingConfig, RetryConfig, SchedulerConfig
from howhard.errors import (
    HowhardError,
    InvalidRequest,
    PolicyError,
    QueueFull,
    QuotaExceeded,
    RequestTimeout,
    SchedulerClosed,
    UsageError,
)
from howhard.policies.base import Policy, check_budgets
from howhard.policies.policies import UniformPolicy
from howhard.procedures.base import Outcome, Procedure
from howhard.procedures.self_consistency import SelfConsistency
from howhard.scheduler.batcher import BudgetCarry, next_batch
from howhard.scheduler.context import CallContext
from howhard.scheduler.events import Events, Observer
from howhard.scheduler.ledger import InMemoryLedger, Ledger, TenantSpend
from howhard.types import GenerationParams, Request, Result, Usage

__all__ = ["Scheduler", "SchedulerState", "SchedulerStats"]


class SchedulerState(enum.Enum):
    """Lifecycle: CREATED → RUNNING (inside ``async with``) → CLOSING → CLOSED."""

    CREATED = "created"
    RUNNING = "running"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SchedulerStats:
    """A snapshot for dashboards: queue, in-flight work, outcomes and per-tenant spend."""

    state: SchedulerState
    queued: int
    """Requests waiting in the bounded queue."""
    waiting_submitters: int
    """Callers blocked in ``submit`` because the queue is full (backpressure)."""
    in_flight: int
    """Requests currently reserved and running on the backend."""
    submitted: int
    completed: int
    failed: int
    cancelled: int
    batches: int
    carry: float
    """Units carried to the next batch (see the carry rule)."""
    spend: Mapping[str, TenantSpend]

    @property
    def resolved(self) -> int:
        """Requests that reached their single outcome (completed + failed + cancelled)."""
        return self.completed + self.failed + self.cancelled


class _Job:
    """One submitted request and its single-assignment outcome."""

    __slots__ = (
        "began",
        "budget",
        "cancelled",
        "deadline",
        "dispatched",
        "done",
        "error",
        "params",
        "request",
        "resolved",
        "result",
        "scope",
        "started",
        "timeout_s",
    )

    def __init__(
        self,
        request: Request,
        params: GenerationParams,
        timeout_s: float | None,
        done: anyio.Event,
    ) -> None:
        self.request = request
        self.params = params
        self.started = time.monotonic()
        self.began = 0.0  # when a worker took it (monotonic); 0 until then
        self.timeout_s = timeout_s
        # Deadlines live on anyio's clock (what cancel scopes compare against).
        self.deadline = math.inf if timeout_s is None else anyio.current_time() + timeout_s
        self.done = done
        self.budget = 0
        self.result: Result | None = None
        self.error: BaseException | None = None
        self.resolved = False
        self.cancelled = False
        self.dispatched = False
        self.scope: anyio.CancelScope | None = None


def _submitted_at(job: _Job) -> float:
    return job.started


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
        ledger: Ledger | None = None,
        config: SchedulerConfig | None = None,
        seed: int | None = None,
        observers: Iterable[Observer] = (),
    ) -> None:
        overrides: dict[str, Any] = {
            key: value
            for key, value in {
                "average_budget": average_budget,
                "batching": batching,
                "max_budget": max_budget,
                "min_budget": min_budget,
                "max_queue": max_queue,
                "max_concurrency": max_concurrency,
                "params": params,
                "retry": retry,
                "request_timeout_s": request_timeout_s,
            }.items()
            if value is not None
        }
        base: dict[str, Any] = dict(config) if config is not None else {}
        self.config = SchedulerConfig(**{**base, **overrides})
        self._backend = backend
        self._policy: Policy = (
            policy if policy is not None else UniformPolicy(max_budget=self.config.max_budget)
        )
        self._procedure: Procedure = procedure if procedure is not None else SelfConsistency()
        self._ledger: Ledger = ledger if ledger is not None else InMemoryLedger()
        self._carry = BudgetCarry(self.config.average_budget, self.config.effective_carry_limit)
        self._rng = random.Random(seed)
        self._log = Events("howhard.scheduler", observers)
        self._state = SchedulerState.CREATED
        self._closed = anyio.Event()
        self._tg: TaskGroup | None = None
        self._work_scope: anyio.CancelScope | None = None
        self._send: MemoryObjectSendStream[_Job] | None = None
        self._receive: MemoryObjectReceiveStream[_Job] | None = None
        self._plans: dict[int, tuple[tuple[str, int], ...]] = {}
        self._planned_models: frozenset[str] | None = None
        self._ready: deque[_Job] = deque()
        self._dispatch_closed = False
        self._idle: deque[anyio.Event] = deque()
        self._ready_drained = anyio.Event()  # replaced by the backend's class in _run
        # anyio.Event() and anyio.CancelScope() look the async backend up on every call; the
        # hot path (one of each per request) uses the backend's classes, resolved at start.
        self._event_type: type[anyio.Event] = anyio.Event
        self._scope_type: type[anyio.CancelScope] = anyio.CancelScope
        self._in_flight = 0
        self._submitted = 0
        self._completed = 0
        self._failed = 0
        self._cancelled = 0
        self._batches = 0

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
        self._send, self._receive = anyio.create_memory_object_stream[_Job](
            max_buffer_size=self.config.max_queue
        )
        self._event_type = type(anyio.Event())
        self._scope_type = type(anyio.CancelScope())
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

        Callers blocked in ``submit`` waiting for queue space get ``SchedulerClosed``.
        """
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
            self._cancel_work()
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
        self._ready_drained = self._event_type()
        try:
            # The scheduler's own scope: aclose(cancel=True) cancels it without touching the
            # caller's code in the body of `async with`.
            with anyio.CancelScope() as self._work_scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._batch_loop)
                    for _ in range(self.config.max_concurrency):
                        tg.start_soon(self._worker)
                    self._state = SchedulerState.RUNNING
                    task_status.started()
        finally:
            # Only after cancellation can jobs remain: fail them, then break the queue so
            # callers still blocked on it get SchedulerClosed too.
            self._send.close()
            while self._ready:
                job = self._ready.popleft()
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
        job = self._new_job(prompt_or_request, tenant, reference, params, metadata, timeout_s)
        return await self._enqueue_and_wait(job, wait_for_space=True)

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
        job = self._new_job(prompt_or_request, tenant, reference, params, metadata, timeout_s)
        return await self._enqueue_and_wait(job, wait_for_space=False)

    def _new_job(
        self,
        prompt_or_request: str | Request,
        tenant: str | None,
        reference: str | None,
        params: GenerationParams | None,
        metadata: Mapping[str, Any] | None,
        timeout_s: float | None,
    ) -> _Job:
        if self._state is not SchedulerState.RUNNING:
            raise SchedulerClosed(
                f"the scheduler is {self._state.value}; submit inside `async with Scheduler(...)`"
            )
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidRequest(f"metadata must be a mapping, got {type(metadata).__name__}")
        if timeout_s is not None and (
            isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float)
        ):
            raise InvalidRequest(
                f"timeout_s must be a number of seconds or None, got {timeout_s!r}"
            )
        if isinstance(prompt_or_request, Request):
            overrides: dict[str, Any] = {
                key: value
                for key, value in {
                    "tenant": tenant,
                    "reference": reference,
                    "params": params,
                    "metadata": metadata,
                }.items()
                if value is not None
            }
            request = (
                dataclasses.replace(prompt_or_request, **overrides)
                if overrides
                else prompt_or_request
            )
        elif isinstance(prompt_or_request, str):
            request = Request(
                prompt=prompt_or_request,
                tenant=tenant if tenant is not None else "default",
                reference=reference,
                params=params,
                metadata=metadata or {},
            )
        else:
            raise InvalidRequest(
                "submit() takes a prompt string or a Request, "
                f"got {type(prompt_or_request).__name__}"
            )
        if request.params is not None and not isinstance(request.params, GenerationParams):
            raise InvalidRequest(
                f"params must be a GenerationParams, got {type(request.params).__name__}"
            )
        self._ledger.check_tenant(request.tenant)  # unknown tenants fail here, changing nothing
        timeout = timeout_s if timeout_s is not None else self.config.request_timeout_s
        if timeout is not None and not timeout > 0:
            raise InvalidRequest(f"timeout_s must be > 0 or None, got {timeout!r}")
        if timeout is None and self._ledger.has_cost_quota(request.tenant):
            self._refuse_unbounded_time(request.tenant)
        self._submitted += 1
        return _Job(request, request.params or self.config.params, timeout, self._event_type())

    async def _enqueue_and_wait(self, job: _Job, *, wait_for_space: bool) -> Result:
        try:
            if job.deadline == math.inf:
                await self._send_and_wait(job, wait_for_space=wait_for_space)
            else:
                # The deadline covers waiting for queue space, in the queue and behind the
                # policy too, not just execution (whose own scope shares this deadline).
                with self._scope_type(deadline=job.deadline):
                    await self._send_and_wait(job, wait_for_space=wait_for_space)
                if not job.resolved:
                    if job.scope is None:  # never started: fail it here, nothing to refund
                        self._resolve(job, error=self._timeout_error(job))
                    else:  # running: its scope is expiring too and resolves it (with refund)
                        await job.done.wait()
        except BaseException:
            # The caller was cancelled (or interrupted): its request must not run on.
            self._cancel(job)
            raise
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    async def _send_and_wait(self, job: _Job, *, wait_for_space: bool) -> None:
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

    def _closed_error(self, job: _Job) -> SchedulerClosed:
        return SchedulerClosed(
            f"request {job.request.id} did not run: the scheduler was closed "
            f"({self._state.value}) before it finished"
        )

    def _cancel(self, job: _Job) -> None:
        if job.resolved:
            return
        job.resolved = True
        job.cancelled = True
        self._cancelled += 1
        if job.scope is not None:
            job.scope.cancel()

    def _resolve(
        self, job: _Job, result: Result | None = None, error: BaseException | None = None
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
                batch: list[_Job] = []
                try:
                    if (
                        await next_batch(
                            self._receive,
                            max_batch_size=batching.max_batch_size,
                            max_wait_s=batching.max_wait_s,
                            arrival=_submitted_at,
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
            self._dispatch_closed = True
            self._wake_workers()

    def _wake_workers(self, count: int | None = None) -> None:
        # Wake only as many idle workers as there are new jobs (no thundering herd).
        idle = self._idle
        for _ in range(len(idle) if count is None else min(count, len(idle))):
            idle.popleft().set()

    async def _allocate_and_dispatch(self, batch: list[_Job]) -> None:
        live = [job for job in batch if not job.resolved]
        if not live:
            return
        n = len(live)
        total = self._carry.total(n)
        self._batches += 1
        self._log.debug("batch.formed", size=n, wait_s=round(time.monotonic() - live[0].started, 6))
        try:
            raw = await self._policy.allocate([job.request for job in live], total)
            budgets = check_budgets(
                raw,
                n=n,
                total_budget=total,
                min_budget=self.config.min_budget,
                max_budget=self.config.max_budget,
                policy=self._policy,
            )
        except Exception as exc:
            self._log.warning(
                "batch.policy_failed", size=n, policy=type(self._policy).__name__, error=str(exc)
            )
            for job in live:
                self._resolve(job, error=self._policy_error(exc))
            return
        spent = sum(budgets)
        self._carry.spend(n, spent)
        self._log.debug(
            "batch.allocated",
            size=n,
            total=total,
            spent=spent,
            min=min(budgets),
            max=max(budgets),
            carry=float(self._carry.carry),
        )
        # Hand over only when workers have taken the previous batch: at most one allocated batch
        # waits for workers, while the next one is already being gathered and allocated.
        while self._ready:
            await self._ready_drained.wait()
        for job, budget in zip(live, budgets, strict=True):
            if job.resolved:  # the caller gave up while the policy ran
                continue
            job.budget = budget
            job.dispatched = True
            self._ready.append(job)
        self._wake_workers(len(self._ready))

    def _policy_error(self, exc: Exception) -> PolicyError:
        name = type(self._policy).__name__
        if isinstance(exc, PolicyError):
            error = PolicyError(str(exc))
        else:
            error = PolicyError(f"{name}.allocate raised {type(exc).__name__}: {exc}")
        error.__cause__ = exc
        return error

    # ------------------------------------------------------------------ execution

    async def _worker(self) -> None:
        # Workers share a deque filled one batch at a time (bounded by max_batch_size); there
        # are max_concurrency of them, which is the dispatch concurrency limit.
        ready = self._ready
        while True:
            if ready:
                job = ready.popleft()
                if not ready:
                    event, self._ready_drained = self._ready_drained, self._event_type()
                    event.set()
                if not job.resolved:
                    await self._execute(job)
            elif self._dispatch_closed:
                return
            else:
                wake = self._event_type()
                self._idle.append(wake)
                await wake.wait()

    def _planned(self, budget: int) -> tuple[tuple[str, int], ...]:
        """``(model, n)`` of each call planned for ``budget`` (cached: plans must be pure)."""
        plan = self._plans.get(budget)
        if plan is None:
            default = self._backend
            plan = tuple(
                ((call.backend or default).model, call.n) for call in self._procedure.plan(budget)
            )
            for _, n in plan:
                # A negative n would reserve a negative worst case: a credit against the quota.
                if type(n) is not int or n < 0:
                    raise UsageError(
                        f"{type(self._procedure).__name__}.plan({budget}) planned n={n!r}; "
                        "each PlannedCall.n must be an int >= 0"
                    )
            if len(self._plans) < 4096:
                self._plans[budget] = plan
        return plan

    def _refuse_unbounded_time(self, tenant: str) -> None:
        # Per-second cost is reserved as the request's timeout; without one the worst case is
        # unbounded and concurrent requests could overspend the tenant's cost quota.
        if self._planned_models is None:
            self._planned_models = frozenset(
                model
                for budget in range(self.config.min_budget, self.config.max_budget + 1)
                for model, n in self._planned(budget)
                if n > 0
            )
        for model in sorted(self._planned_models):
            per_second = self._ledger.price(model).per_second
            if per_second > 0:
                raise InvalidRequest(
                    f"tenant {tenant!r} has a cost quota and model {model!r} is priced per second "
                    f"(per_second={per_second}), but the request has no timeout, so its cost "
                    "cannot be reserved; pass timeout_s=... (or set request_timeout_s), or price "
                    f"{model!r} per token"
                )

    def _worst_case(self, job: _Job) -> Callable[[int], Usage]:
        prompt_bound = len(job.request.prompt.encode()) + self.config.prompt_overhead_tokens
        max_tokens = job.params.max_tokens
        seconds = job.timeout_s or 0.0
        price = self._ledger.price
        planned = self._planned

        def worst_case(budget: int) -> Usage:
            prompt = completion = 0
            cost = 0.0
            for model, n in planned(budget):
                generated = n * max_tokens
                prompt += prompt_bound
                completion += generated
                cost += price(model).cost(prompt_bound, generated, seconds)
            return Usage(
                prompt_tokens=prompt, completion_tokens=completion, units=budget, cost=cost
            )

        return worst_case

    async def _execute(self, job: _Job) -> None:
        request = job.request
        if job.deadline != math.inf and anyio.current_time() >= job.deadline:
            # Expired while queued: fail without reserving or calling the backend.
            self._resolve(job, error=self._timeout_error(job))
            return
        reservation = None
        result: Result | None = None
        error: BaseException | None = None
        job.began = time.monotonic()
        self._in_flight += 1
        try:
            with self._scope_type(deadline=job.deadline) as scope:
                job.scope = scope
                try:
                    reservation = await self._ledger.reserve(
                        request.tenant,
                        job.budget,
                        self._worst_case(job),
                        min_budget=self.config.min_budget,
                    )
                    context = CallContext(
                        self._backend,
                        job.params,
                        retry=self.config.retry,
                        price=self._ledger.price,
                        rng=self._rng,
                        log=self._log,
                    )
                    outcome = await self._procedure.run(request, reservation.budget, context)
                    if not isinstance(outcome, Outcome):
                        raise UsageError(
                            f"{type(self._procedure).__name__}.run returned "
                            f"{type(outcome).__name__}; a procedure returns an Outcome"
                        )
                    usage = context.usage_with_units(reservation.budget)
                    # Shielded: a cancellation landing inside an async ledger's settle, after it
                    # committed, would otherwise have the finally block refund it a second time.
                    with self._scope_type(shield=True):
                        await self._ledger.settle(reservation, usage)
                    reservation = None
                    metadata = outcome.metadata
                    if job.budget != usage.units:
                        metadata = MappingProxyType({**metadata, "requested_budget": job.budget})
                    result = Result(
                        request_id=request.id,
                        answer=outcome.answer,
                        chosen=outcome.chosen,
                        candidates=outcome.candidates,
                        budget=usage.units,
                        usage=usage,
                        latency_s=time.monotonic() - job.started,
                        tenant=request.tenant,
                        abstained=outcome.abstained,
                        metadata=metadata,
                    )
                except Exception as exc:
                    error = exc
            if scope.cancelled_caught and not job.cancelled:
                error = self._timeout_error(job)
        except anyio.get_cancelled_exc_class():
            # The scheduler itself is being cancelled (aclose(cancel=True)).
            error = self._closed_error(job)
            raise
        finally:
            self._in_flight -= 1
            if reservation is not None:
                with anyio.CancelScope(shield=True):
                    try:
                        await self._ledger.refund(reservation)
                    except Exception as exc:
                        # A remote store may fail here; the caller must still get its outcome
                        # and the other requests their workers, so log it rather than crash.
                        self._log.error(
                            "ledger.refund_failed",
                            tenant=request.tenant,
                            reservation=reservation.id,
                            error=f"{type(exc).__name__}: {exc}",
                        )
            if not job.cancelled:
                self._resolve(job, result, error)
                self._log_outcome(job, result, error)

    @staticmethod
    def _timeout_error(job: _Job) -> RequestTimeout:
        return RequestTimeout(
            f"request {job.request.id} did not finish within timeout_s={job.timeout_s} "
            "(queueing and retries included); raise request_timeout_s or reduce load"
        )

    def _log_outcome(self, job: _Job, result: Result | None, error: BaseException | None) -> None:
        if result is not None:
            self._log.debug(
                "request.done",
                request_id=result.request_id,
                tenant=result.tenant,
                budget=result.budget,
                samples=len(result.candidates),
                prompt_tokens=result.usage.prompt_tokens,
                completion_tokens=result.usage.completion_tokens,
                tokens=result.usage.total_tokens,
                cost=result.usage.cost,
                queue_s=round(job.began - job.started, 6),
                latency_s=round(result.latency_s, 6),
                outcome="abstained" if result.abstained else "answered",
            )
        elif isinstance(error, QuotaExceeded):
            self._log.info(
                "quota.rejected",
                request_id=job.request.id,
                tenant=job.request.tenant,
                budget=job.budget,
            )
        elif error is not None:
            self._log.info(
                "request.failed",
                request_id=job.request.id,
                tenant=job.request.tenant,
                budget=job.budget,
                error=type(error).__name__,
                expected=isinstance(error, HowhardError),
                latency_s=round(time.monotonic() - job.started, 6),
            )

    # ------------------------------------------------------------------ observability

    def _counters(self) -> dict[str, int]:
        return {
            "submitted": self._submitted,
            "completed": self._completed,
            "failed": self._failed,
            "cancelled": self._cancelled,
            "batches": self._batches,
        }

    def stats(self) -> SchedulerStats:
        """A consistent snapshot of queue depth, in-flight work, outcomes and spend."""
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
            carry=float(self._carry.carry),
            spend=self._ledger.snapshot(),
            **self._counters(),
        )
