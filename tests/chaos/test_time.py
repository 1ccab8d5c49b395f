"""Time is bounded everywhere: no plug-in, server hint or missing deadline holds a request.

Each test wraps the scheduler in ``anyio.fail_after`` as a backstop: a hang fails the test
instead of stalling the suite.
"""

import threading
import time
from collections.abc import Sequence
from typing import Any

import anyio
import pytest

from howhard import BatchingConfig, Scheduler, SchedulerConfig
from howhard.backends import ScriptedBackend
from howhard.config import DEFAULT_REQUEST_TIMEOUT_S
from howhard.errors import PolicyError, RateLimited, RequestTimeout, ScoringError
from howhard.ledger import Hold, InMemoryLedger
from howhard.procedures import BestOfK
from howhard.scoring import BlockingScorer, MathAnswerVerifier, Scorer, ShortAnswerVerifier
from howhard.testing.chaos import HostileBackend, HostilePolicy, tagged
from howhard.types import Result

pytestmark = pytest.mark.anyio


async def test_a_retry_after_of_a_day_is_not_waited_for() -> None:
    # No deadline at all: before, the request, a worker and its reservation waited a day.
    config = SchedulerConfig(average_budget=1, request_timeout_s=None)
    async with Scheduler(backend=HostileBackend(), config=config) as scheduler:
        with anyio.fail_after(5), pytest.raises(RateLimited) as caught:
            await scheduler.submit(tagged("q", "rate_limited_for_a_day"))
        assert caught.value.retry_after == 86400  # the hint reaches the caller
        spend = (await scheduler.spend())["default"]
    assert spend.open_reservations == 0


async def test_a_request_without_a_timeout_gets_the_default_deadline() -> None:
    assert SchedulerConfig(average_budget=1).request_timeout_s == DEFAULT_REQUEST_TIMEOUT_S
    async with Scheduler(
        backend=HostileBackend(), average_budget=1, request_timeout_s=0.05
    ) as scheduler:
        with anyio.fail_after(5), pytest.raises(RequestTimeout):
            await scheduler.submit(tagged("q", "hang"))  # no timeout_s of its own


async def test_a_policy_that_never_returns_fails_its_batch_and_later_batches_go_on() -> None:
    config = SchedulerConfig(
        average_budget=1,
        policy_timeout_s=0.05,
        batching=BatchingConfig(max_batch_size=1, max_wait_s=0.0),
    )
    with anyio.fail_after(5):
        async with Scheduler(
            backend=ScriptedBackend(), policy=HostilePolicy(), config=config
        ) as scheduler:
            with pytest.raises(PolicyError, match=r"did not return within policy_timeout_s=0.05"):
                await scheduler.submit(tagged("q", "policy_hang"))
            assert isinstance(await scheduler.submit("next batch"), Result)
    # and close() returned (the fail_after above did not fire)


@pytest.mark.parametrize("fault", ["thread_block", "shielded_hang"])
async def test_a_backend_ignoring_cancellation_does_not_hold_its_caller(fault: str) -> None:
    backend = HostileBackend(block_s=2.0)
    async with Scheduler(backend=backend, average_budget=1) as scheduler:
        began = time.monotonic()
        with anyio.fail_after(5), pytest.raises(RequestTimeout):
            await scheduler.submit(tagged("q", fault), timeout_s=0.1)
        # Answered at its deadline (plus a short grace), not when the blocked work ended.
        assert time.monotonic() - began < 1.0
        backend.release.set()
        await anyio.wait_all_tasks_blocked()
    spend = (await scheduler.spend())["default"]
    assert spend.open_reservations == 0  # closed once the blocked work ended


@pytest.mark.parametrize(
    ("verifier", "reply"),
    [
        (MathAnswerVerifier(timeout_s=3), "The answer is 9^9^9^9."),
        (ShortAnswerVerifier(math_timeout_s=3), "The answer is \\(9^{9^{9^{9}}}\\)."),
    ],
    ids=["MathAnswerVerifier", "ShortAnswerVerifier"],
)
async def test_a_power_tower_in_math_verify_does_not_stall_other_requests(
    verifier: Scorer, reply: str
) -> None:
    # sympy on 9^9^9^9 does not yield; verified on the event loop it stalled every other
    # request (and deadline) for its whole timeout. A ticker shows whether the loop kept going.

    def handler(prompt: str, n: int, params: object) -> list[str]:
        return [reply] * n

    gaps: list[float] = []
    async with (
        Scheduler(
            backend=ScriptedBackend(handler), procedure=BestOfK(verifier), average_budget=1
        ) as scheduler,
        anyio.create_task_group() as group,
    ):

        async def ticker() -> None:
            last = time.monotonic()
            while True:
                await anyio.sleep(0.02)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        group.start_soon(ticker)
        with anyio.fail_after(30):
            result = await scheduler.submit("tower", reference="3")
        group.cancel_scope.cancel()
    assert result.chosen is not None and result.chosen.score == 0.0
    assert len(gaps) > 10 and max(gaps) < 1.0


async def test_a_blocking_scorer_runs_off_the_loop_and_gives_up_at_its_time_limit() -> None:
    release = threading.Event()

    def slow(request: object, completions: object) -> list[float]:
        release.wait(10)  # CPU-bound work stands in here: it never yields to the loop
        return [1.0]

    ledger = InMemoryLedger()
    async with Scheduler(
        backend=ScriptedBackend(),
        procedure=BestOfK(BlockingScorer(slow, timeout_s=0.2)),
        average_budget=1,
        ledger=ledger,
    ) as scheduler:
        began = time.monotonic()
        with anyio.fail_after(5), pytest.raises(ScoringError, match=r"slow did not finish"):
            await scheduler.submit("q")
        assert time.monotonic() - began < 2.0
        release.set()
    spend = (await ledger.snapshot())["default"]
    assert spend.settled.completion_tokens > 0  # the sample was generated: it is charged


class _HangingStore(InMemoryLedger):
    """A quota store that never answers one operation."""

    def __init__(self, operation: str) -> None:
        super().__init__()
        self.operation = operation

    async def check_tenant(self, tenant: str) -> Any:
        if self.operation == "check_tenant":
            await anyio.sleep_forever()
        return await super().check_tenant(tenant)

    async def reserve(self, tenant: str, hold: Hold, *, fallbacks: Sequence[Hold] = ()) -> Any:
        if self.operation == "reserve":
            await anyio.sleep_forever()
        return await super().reserve(tenant, hold, fallbacks=fallbacks)


@pytest.mark.parametrize("operation", ["check_tenant", "reserve"])
async def test_a_ledger_store_that_never_answers_ends_at_the_deadline(operation: str) -> None:
    async with Scheduler(
        backend=ScriptedBackend(), average_budget=1, ledger=_HangingStore(operation)
    ) as scheduler:
        with anyio.fail_after(5), pytest.raises(RequestTimeout):
            await scheduler.submit("q", timeout_s=0.1)
        stats = scheduler.stats()
        assert stats.submitted == stats.resolved
