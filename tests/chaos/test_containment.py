"""A plug-in's failure stays in its own request: stray cancellations and borrowed error types.

Each test lets one plug-in (backend, scorer, procedure, policy, predictor, ledger store,
observer) misbehave on one request among several in flight, then checks that only that request
failed, with a typed error that does not lie about the scheduler, and that the scheduler still
serves and closes cleanly.
"""

import asyncio
from collections.abc import Sequence
from typing import Any

import anyio
import pytest

from howhard import BatchingConfig, Scheduler
from howhard.backends import ScriptedBackend
from howhard.errors import (
    BackendError,
    HowhardError,
    InvalidRequest,
    PluginError,
    PolicyError,
    QuotaExceeded,
    RequestTimeout,
    SchedulerClosed,
    ScoringError,
)
from howhard.ledger import Amount, Hold, InMemoryLedger, Reservation
from howhard.policies import AdaptivePolicy, OnlineAllocator
from howhard.procedures import BestOfK, Context, Outcome, PlannedCall, SelfConsistency
from howhard.scheduler import SchedulerState
from howhard.testing.chaos import HostileBackend, HostilePolicy, HostileScorer, tagged
from howhard.types import GenerationParams, Request, Result

pytestmark = pytest.mark.anyio

WIDE = BatchingConfig(max_batch_size=8, max_wait_s=0.0)


async def _run_among_healthy(scheduler: Scheduler, bad_prompt: str) -> tuple[object, list[object]]:
    """Submit ``bad_prompt`` among 7 healthy requests; its outcome, and theirs."""
    outcomes: dict[int, object] = {}

    async def one(i: int, prompt: str) -> None:
        try:
            outcomes[i] = await scheduler.submit(prompt)
        except HowhardError as exc:
            outcomes[i] = exc

    async with anyio.create_task_group() as group:
        for i in range(8):
            group.start_soon(one, i, bad_prompt if i == 3 else f"healthy {i}")
    return outcomes[3], [outcomes[i] for i in range(8) if i != 3]


async def _still_serves(scheduler: Scheduler) -> None:
    assert isinstance(await scheduler.submit("one more"), Result)
    assert scheduler.state is SchedulerState.RUNNING
    stats = scheduler.stats()
    assert stats.submitted == stats.resolved


async def test_a_backend_raising_a_stray_cancellation_fails_only_its_request() -> None:
    async with Scheduler(backend=HostileBackend(), average_budget=1, batching=WIDE) as scheduler:
        bad, healthy = await _run_among_healthy(scheduler, tagged("q", "stray_cancel"))
        assert isinstance(bad, BackendError) and "CancelledError" in str(bad)
        assert isinstance(bad.__cause__, asyncio.CancelledError)
        assert all(isinstance(o, Result) for o in healthy)
        await _still_serves(scheduler)
    assert scheduler.state is SchedulerState.CLOSED


@pytest.mark.parametrize(
    "fault",
    ["scheduler_closed", "quota_exceeded", "invalid_request", "policy_error", "request_timeout"],
)
async def test_a_backend_raising_the_schedulers_own_error_types_is_a_backend_error(
    fault: str,
) -> None:
    async with Scheduler(backend=HostileBackend(), average_budget=1, batching=WIDE) as scheduler:
        bad, healthy = await _run_among_healthy(scheduler, tagged("q", fault))
        # Passed through, SchedulerClosed would tell the caller the scheduler closed; it did not.
        assert type(bad) is BackendError
        assert isinstance(
            bad.__cause__,
            SchedulerClosed | QuotaExceeded | InvalidRequest | PolicyError | RequestTimeout,
        )
        assert all(isinstance(o, Result) for o in healthy)
        await _still_serves(scheduler)


@pytest.mark.parametrize(
    ("fault", "cause"),
    [
        ("scorer_stray_cancel", asyncio.CancelledError),
        ("scorer_closed", SchedulerClosed),
        ("scorer_raises", ValueError),
    ],
)
async def test_a_scorer_failing_fails_its_request_with_scoring_error(
    fault: str, cause: type[BaseException]
) -> None:
    async with Scheduler(
        backend=HostileBackend(),
        procedure=BestOfK(HostileScorer()),
        average_budget=1,
        batching=WIDE,
    ) as scheduler:
        bad, healthy = await _run_among_healthy(scheduler, tagged("q", fault))
        assert isinstance(bad, ScoringError) and isinstance(bad.__cause__, cause)
        assert all(isinstance(o, Result) for o in healthy)
        await _still_serves(scheduler)


class _StrayProcedure:
    """A procedure whose own code (not its backend or scorer) lets a cancellation escape."""

    def plan(self, budget: int) -> Sequence[PlannedCall]:
        return [PlannedCall(None, budget)] if budget else []

    async def run(self, request: Request, budget: int, context: Context) -> Outcome:
        if "stray" in request.prompt:
            raise asyncio.CancelledError()
        if "closed" in request.prompt:
            raise SchedulerClosed("a procedure claiming the scheduler closed")
        return await SelfConsistency().run(request, budget, context)


@pytest.mark.parametrize("word", ["stray", "closed"])
async def test_a_procedure_failing_fails_its_request_with_plugin_error(word: str) -> None:
    async with Scheduler(
        backend=ScriptedBackend(), procedure=_StrayProcedure(), average_budget=1, batching=WIDE
    ) as scheduler:
        bad, healthy = await _run_among_healthy(scheduler, f"q {word}")
        assert type(bad) is PluginError and "_StrayProcedure.run raised" in str(bad)
        assert all(isinstance(o, Result) for o in healthy)
        await _still_serves(scheduler)


@pytest.mark.parametrize("fault", ["policy_stray_cancel", "policy_raises"])
async def test_a_policy_failing_fails_its_batch_and_later_batches_go_on(fault: str) -> None:
    async with Scheduler(
        backend=ScriptedBackend(),
        policy=HostilePolicy(),
        average_budget=1,
        batching=BatchingConfig(max_batch_size=1, max_wait_s=0.0),
    ) as scheduler:
        with pytest.raises(PolicyError, match=r"HostilePolicy.allocate raised"):
            await scheduler.submit(tagged("q", fault))
        await _still_serves(scheduler)


class _StrayPredictor:
    """A predictor that lets a cancellation escape once."""

    def __init__(self) -> None:
        self.calls = 0

    async def predict(self, requests: Sequence[Request], max_budget: int) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise asyncio.CancelledError()
        import numpy as np

        return np.full((len(requests), max_budget), 0.5) / np.arange(1, max_budget + 1)


async def test_a_predictor_raising_a_stray_cancellation_is_a_policy_error() -> None:
    policy = AdaptivePolicy(_StrayPredictor(), OnlineAllocator())
    async with Scheduler(
        backend=ScriptedBackend(), policy=policy, average_budget=1, max_budget=2
    ) as scheduler:
        with pytest.raises(PolicyError, match=r"CancelledError"):
            await scheduler.submit("q")
        await _still_serves(scheduler)


class _HostileStore(InMemoryLedger):
    """An in-memory store that lets a cancellation escape (or claims the scheduler closed)."""

    def __init__(self, operation: str, error: BaseException) -> None:
        super().__init__()
        self.operation = operation
        self.error = error
        self.armed = True

    def _maybe(self, operation: str) -> None:
        if self.armed and operation == self.operation:
            self.armed = False
            raise self.error

    async def check_tenant(self, tenant: str) -> Any:
        self._maybe("check_tenant")
        return await super().check_tenant(tenant)

    async def reserve(self, tenant: str, hold: Hold, *, fallbacks: Sequence[Hold] = ()) -> Any:
        self._maybe("reserve")
        return await super().reserve(tenant, hold, fallbacks=fallbacks)

    async def settle(self, reservation: Reservation, actual: Amount) -> Amount:
        self._maybe("settle")
        return await super().settle(reservation, actual)


@pytest.mark.parametrize("operation", ["check_tenant", "reserve", "settle"])
@pytest.mark.parametrize(
    "error", [asyncio.CancelledError(), SchedulerClosed("a store claiming it")], ids=repr
)
async def test_a_ledger_store_failing_fails_one_request_with_plugin_error(
    operation: str, error: BaseException
) -> None:
    store = _HostileStore(operation, error)
    async with Scheduler(backend=ScriptedBackend(), average_budget=1, ledger=store) as scheduler:
        with pytest.raises(PluginError, match=rf"_HostileStore.{operation} raised"):
            await scheduler.submit("q")
        await _still_serves(scheduler)


async def test_an_observer_raising_a_stray_cancellation_is_logged_not_fatal(
    log_events: list[dict[str, Any]],
) -> None:
    def observer(event: object) -> None:
        raise asyncio.CancelledError()

    async with Scheduler(
        backend=ScriptedBackend(), average_budget=1, observers=[observer]
    ) as scheduler:
        await _still_serves(scheduler)
    assert [e["event"] for e in log_events if e["event"] == "observer.failed"] == [
        "observer.failed"
    ]


async def test_a_real_cancellation_still_cancels() -> None:
    gate = anyio.Event()

    async def handler(prompt: str, n: int, params: GenerationParams) -> list[str]:
        await gate.wait()
        return ["4"] * n

    async with Scheduler(backend=ScriptedBackend(handler), average_budget=1) as scheduler:
        with anyio.move_on_after(0.05) as scope:
            await scheduler.submit("q")
        assert scope.cancelled_caught
        await anyio.wait_all_tasks_blocked()
        spend = (await scheduler.spend())["default"]
        assert spend.open_reservations == 0
        gate.set()
        await _still_serves(scheduler)


class _NamelessBackend(ScriptedBackend):
    """A backend whose model name raises: pricing its plan calls it."""

    @property
    def model(self) -> str:
        raise AttributeError("no model today")


async def test_a_backend_whose_model_name_raises_fails_typed() -> None:
    async with Scheduler(backend=_NamelessBackend(), average_budget=1) as scheduler:
        with pytest.raises(PluginError, match=r"AttributeError: no model today"):
            await scheduler.submit("q")
        assert scheduler.state is SchedulerState.RUNNING
