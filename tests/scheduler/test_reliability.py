"""Reliability: exactly-once resolution under faults, quotas under concurrency, cancellation."""

import asyncio
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from howhard import BatchingConfig, Price, QuotaConfig, Request, RetryConfig, Scheduler
from howhard.backends import ScriptedBackend
from howhard.errors import (
    BackendError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    PolicyError,
    QuotaExceeded,
    RateLimited,
    RequestTimeout,
    RetryableError,
    SchedulerClosed,
    UsageError,
)
from howhard.ledger import Amount, Hold
from howhard.ledger.rules import total
from howhard.procedures import Context, Outcome, PlannedCall
from howhard.scheduler import InMemoryLedger, Reservation
from howhard.types import BudgetBounds, Completion, Generation, GenerationParams, Result, Usage

pytestmark = pytest.mark.anyio

FAST_RETRY = RetryConfig(max_attempts=2, initial_backoff_s=0.0, jitter=False)


def total_usage(results: Sequence[Result]) -> Usage:
    """The results' usage summed as the ledger sums it: money exactly, in micro-units."""
    return total(Amount.of(result.usage) for result in results).usage()


async def test_ten_thousand_submits_with_faults_resolve_exactly_once() -> None:
    hang_forever = "#hang"

    async def handler(prompt: str, n: int, params: GenerationParams) -> list[str]:
        if prompt.endswith(hang_forever):
            await anyio.sleep_forever()
        return [f"The answer is {len(prompt) % 7}."] * n

    backend = ScriptedBackend(
        handler,
        fault_rate=0.1,
        seed=7,
        fault_errors=(
            BackendTimeout("timed out"),
            RateLimited("slow down", retry_after=0.0),
            BackendUnavailable("503"),
            BackendRejected("400"),
        ),
        record=False,
    )
    outcomes: dict[int, Result | BaseException] = {}
    async with Scheduler(
        backend=backend,
        average_budget=2,
        batching=BatchingConfig(max_batch_size=128, max_wait_s=0.001),
        retry=FAST_RETRY,
        max_concurrency=128,
    ) as scheduler:

        async def submit(i: int) -> None:
            hangs = i % 100 == 7
            prompt = f"question {i}" + (hang_forever if hangs else "")
            try:
                outcome: Result | BaseException = await scheduler.submit(
                    prompt, tenant=f"tenant-{i % 3}", timeout_s=0.05 if hangs else None
                )
            except Exception as exc:
                outcome = exc
            assert i not in outcomes, f"submit {i} resolved twice"
            outcomes[i] = outcome

        async with anyio.create_task_group() as tg:
            for i in range(10_000):
                tg.start_soon(submit, i)
        stats = scheduler.stats()
        stats_spend = await scheduler.spend()

    assert len(outcomes) == 10_000
    kinds = Counter(type(o).__name__ for o in outcomes.values())
    assert set(kinds) <= {
        "Result",
        "BackendTimeout",
        "RateLimited",
        "BackendUnavailable",
        "BackendRejected",
        "RequestTimeout",
    }
    hung = [outcomes[i] for i in range(7, 10_000, 100)]
    # A hanging request times out unless an injected fault ended it first.
    assert all(isinstance(o, RequestTimeout | BackendError) for o in hung)
    assert kinds["RequestTimeout"] == sum(isinstance(o, RequestTimeout) for o in hung) >= 80
    assert kinds["BackendRejected"] > 0  # not retried: fails fast
    assert kinds["Result"] > 9_000
    assert stats.submitted == stats.resolved == 10_000
    assert stats.failed == 10_000 - kinds["Result"]
    assert stats.in_flight == 0 and stats.queued == 0
    for t in range(3):
        tenant = f"tenant-{t}"
        results = [o for o in outcomes.values() if isinstance(o, Result) and o.tenant == tenant]
        spend = stats_spend[tenant]
        assert spend.settled == total_usage(results)
        assert spend.reserved == Usage() and spend.open_reservations == 0


class AuditedLedger(InMemoryLedger):
    """Checks after every reservation that held spend never exceeds the quota."""

    def __init__(self, quota: QuotaConfig, **kwargs: Any) -> None:
        super().__init__({"small": quota}, **kwargs)
        self.quota = quota
        self.peak = Usage()

    async def reserve(
        self, tenant: str, hold: Hold, *, fallbacks: Sequence[Hold] = ()
    ) -> Reservation:
        reservation = await super().reserve(tenant, hold, fallbacks=fallbacks)
        spend = (await self.snapshot())[tenant]
        held = spend.window + spend.reserved
        assert self.quota.units is not None and held.units <= self.quota.units
        assert self.quota.tokens is not None and held.total_tokens <= self.quota.tokens
        assert self.quota.cost is not None and held.cost <= self.quota.cost + 1e-9
        self.peak = max(self.peak, held, key=lambda u: u.units)
        return reservation


@pytest.mark.parametrize("on_exceed", ["reject", "degrade"])
async def test_concurrent_submitters_never_overspend_a_small_quota(on_exceed: str) -> None:
    async def handler(prompt: str, n: int, params: GenerationParams) -> list[str]:
        await anyio.lowlevel.checkpoint()  # interleave with other requests in flight
        return ["The answer is 4."] * n

    quota = QuotaConfig(units=300, tokens=40_000, cost=5.0, on_exceed=on_exceed)
    ledger = AuditedLedger(quota)
    results: list[Result] = []
    rejected: list[QuotaExceeded] = []
    async with Scheduler(
        backend=ScriptedBackend(handler),
        ledger=ledger,
        prices={"scripted": Price(input_per_mtok=100.0, output_per_mtok=200.0)},
        average_budget=4,
        params=GenerationParams(max_tokens=8),
        batching=BatchingConfig(max_batch_size=32, max_wait_s=0.001),
        max_concurrency=64,
    ) as scheduler:

        async def submit(i: int) -> None:
            try:
                results.append(await scheduler.submit(f"question {i}", tenant="small"))
            except QuotaExceeded as exc:
                rejected.append(exc)

        async with anyio.create_task_group() as tg:
            for i in range(500):
                tg.start_soon(submit, i)
        spend = (await scheduler.spend())["small"]

    assert len(results) + len(rejected) == 500
    assert spend.settled == total_usage(results)
    assert spend.settled.units <= 300
    assert spend.settled.total_tokens <= 40_000
    assert spend.settled.cost <= 5.0 + 1e-9
    assert ledger.peak.units > 200  # the quota was actually contended
    if on_exceed == "reject":
        assert rejected and all(exc.tenant == "small" for exc in rejected)
        assert "over quota" in str(rejected[0])
        assert spend.rejected == len(rejected)
    else:
        assert not rejected
        degraded = [r for r in results if "requested_budget" in r.metadata]
        assert degraded and spend.degraded == len(degraded)
        assert any(r.abstained for r in degraded)


async def test_cancellation_storm_refunds_every_reservation_and_leaks_no_tasks() -> None:
    gate = anyio.Event()

    async def handler(prompt: str, n: int, params: GenerationParams) -> list[str]:
        await gate.wait()
        return ["The answer is 1."] * n

    tasks_before = len(asyncio.all_tasks())
    backend = ScriptedBackend(handler)
    async with Scheduler(
        backend=backend,
        average_budget=3,
        batching=BatchingConfig(max_batch_size=16, max_wait_s=0.0),
        max_concurrency=16,
        max_queue=64,
    ) as scheduler:
        async with anyio.create_task_group() as callers:
            for i in range(400):
                callers.start_soon(scheduler.submit, f"q{i}")
            await anyio.wait_all_tasks_blocked()
            before = scheduler.stats()
            before_spend = await scheduler.spend()
            assert before.in_flight == 16
            assert before.queued == 64 and before.waiting_submitters > 0
            assert before_spend["default"].reserved.units == 16 * 3
            callers.cancel_scope.cancel()
        await anyio.wait_all_tasks_blocked()
        after = scheduler.stats()
        after_spend = await scheduler.spend()
        assert after.cancelled == 400 and after.resolved == 400
        assert after.in_flight == 0 and after.queued == 0
        spend = after_spend["default"]
        assert spend.open_reservations == 0 and spend.reserved == Usage()
        assert spend.settled == Usage()
        gate.set()
        healthy = await scheduler.submit("still working?")
        assert healthy.answer == "1"
    assert len(asyncio.all_tasks()) == tasks_before


async def test_partial_cancellation_charges_only_delivered_results() -> None:
    gate = anyio.Event()

    async def handler(prompt: str, n: int, params: GenerationParams) -> list[str]:
        await gate.wait()
        return ["The answer is 2."] * n

    results: list[Result] = []
    async with Scheduler(
        backend=ScriptedBackend(handler),
        average_budget=2,
        batching=BatchingConfig(max_batch_size=8, max_wait_s=0.0),
        max_concurrency=8,
    ) as scheduler:
        scopes = [anyio.CancelScope() for _ in range(100)]

        async def submit(i: int) -> None:
            with scopes[i]:
                results.append(await scheduler.submit(f"q{i}"))

        async with anyio.create_task_group() as tg:
            for i in range(100):
                tg.start_soon(submit, i)
            await anyio.wait_all_tasks_blocked()
            for scope in scopes[::2]:
                scope.cancel()
            await anyio.wait_all_tasks_blocked()
            gate.set()
        stats = scheduler.stats()
        stats_spend = await scheduler.spend()
    assert len(results) == 50
    assert stats.cancelled == 50 and stats.completed == 50
    assert stats_spend["default"].settled == total_usage(results)
    assert stats_spend["default"].reserved == Usage()


async def test_deadline_raises_request_timeout_and_refunds() -> None:
    async def hang(prompt: str, n: int, params: GenerationParams) -> list[str]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    # Long enough to reach the backend even on a loaded machine, so the timeout lands on a held
    # reservation (a request that expires in the queue never reserves anything).
    backend = ScriptedBackend(hang)
    async with Scheduler(
        backend=backend,
        average_budget=2,
        request_timeout_s=0.5,
        batching=BatchingConfig(max_wait_s=0.0),
    ) as scheduler:
        with pytest.raises(RequestTimeout, match=r"timeout_s=0.5"):
            await scheduler.submit("slow")
        spend = (await scheduler.spend())["default"]
    assert len(backend.calls) == 1
    assert spend.reserved == Usage() and spend.settled == Usage()


async def test_retryable_errors_are_retried_and_misuse_fails_fast() -> None:
    backend = ScriptedBackend(
        {"q": "The answer is 3."},
        faults=[RateLimited("429", retry_after=0.0), BackendUnavailable, None, BackendRejected],
    )
    retry = RetryConfig(max_attempts=3, initial_backoff_s=0.0)
    async with Scheduler(
        backend=backend, average_budget=1, retry=retry, batching=BatchingConfig(max_wait_s=0.0)
    ) as scheduler:
        result = await scheduler.submit("q")
        assert result.answer == "3"
        assert len(backend.calls) == 3
        with pytest.raises(BackendRejected):
            await scheduler.submit("q")
        assert len(backend.calls) == 4  # not retried


async def test_retries_stop_after_max_attempts_with_the_last_error() -> None:
    backend = ScriptedBackend(faults=[BackendTimeout] * 5)
    async with Scheduler(backend=backend, average_budget=1, retry=FAST_RETRY) as scheduler:
        with pytest.raises(BackendTimeout):
            await scheduler.submit("q")
    assert len(backend.calls) == 2


class FlakyPolicy:
    """Returns ``bad`` for the first batch, then behaves."""

    def __init__(self, bad: Callable[[int, int], Any]) -> None:
        self.bad = bad
        self.calls = 0

    async def allocate(
        self, requests: Sequence[Request], total_budget: int, bounds: BudgetBounds
    ) -> Any:
        self.calls += 1
        if self.calls == 1:
            return self.bad(len(requests), total_budget)
        return [1] * len(requests)


def _raise(n: int, total: int) -> Any:
    raise ZeroDivisionError("policy bug")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (lambda n, total: [1] * (n - 1), "returned 2 budgets for a batch of 3"),
        (lambda n, total: [-1] + [1] * (n - 1), "budgets must be >= min_budget = 0"),
        (lambda n, total: [total] * n, "keep sum\\(budgets\\) <= total_budget"),
        (lambda n, total: [1.5] * n, "budgets are ints"),
        (lambda n, total: [99] + [0] * (n - 1), "<= max_budget = 16"),
        (lambda n, total: None, "return a sequence of ints"),
        (_raise, "raised ZeroDivisionError: policy bug"),
    ],
    ids=["length", "negative", "overspend", "float", "above-max", "none", "raises"],
)
async def test_misbehaving_policy_fails_its_batch_cleanly(
    bad: Callable[[int, int], Any], message: str
) -> None:
    policy = FlakyPolicy(bad)
    errors: list[PolicyError] = []
    async with Scheduler(
        backend=ScriptedBackend({"next": "The answer is 1."}),
        policy=policy,
        average_budget=1,
        batching=BatchingConfig(max_batch_size=3, max_wait_s=30.0),
    ) as scheduler:

        async def submit(i: int) -> None:
            with pytest.raises(PolicyError) as info:
                await scheduler.submit(f"q{i}")
            errors.append(info.value)

        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(submit, i)
        after: list[Result] = []

        async def submit_good() -> None:
            after.append(await scheduler.submit("next"))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(submit_good)
        stats = scheduler.stats()
        stats_spend = await scheduler.spend()
    assert len(errors) == 3
    assert all(e is not errors[0] for e in errors[1:])  # one exception object per caller
    assert re.search(message, str(errors[0]))
    assert [r.answer for r in after] == ["1", "1", "1"]
    assert stats_spend["default"].settled.units == 3
    assert stats_spend["default"].reserved == Usage()
    assert math.isclose(stats.carry, 0.0)


@pytest.mark.parametrize("seed", [11, 12, 13])
async def test_chaos_faults_cancellations_quotas_and_shutdown_keep_the_books_straight(
    seed: int,
) -> None:
    rng = random.Random(seed)

    async def handler(prompt: str, n: int, params: GenerationParams) -> list[str]:
        for _ in range(int(prompt.split()[-1]) % 3):
            await anyio.lowlevel.checkpoint()
        return ["The answer is 1."] * n

    ledger = InMemoryLedger(
        {"capped": QuotaConfig(units=150, on_exceed="degrade")}, default_quota=QuotaConfig()
    )
    backend = ScriptedBackend(handler, fault_rate=0.1, seed=seed, record=False)
    outcomes: list[str] = []
    async with Scheduler(
        backend=backend,
        ledger=ledger,
        average_budget=2,
        retry=FAST_RETRY,
        batching=BatchingConfig(max_batch_size=16, max_wait_s=0.0),
        max_concurrency=8,
        max_queue=32,
    ) as scheduler:

        async def submit(i: int, scope: anyio.CancelScope) -> None:
            outcome = "cancelled"
            with scope:
                try:
                    await scheduler.submit(f"q {i}", tenant="capped" if i % 2 else "open")
                    outcome = "result"
                except Exception as exc:
                    outcome = type(exc).__name__
            outcomes.append(outcome)

        async with anyio.create_task_group() as tg:
            scopes = [anyio.CancelScope() for _ in range(600)]
            for i, scope in enumerate(scopes):
                tg.start_soon(submit, i, scope)
            for _ in range(40):
                await anyio.lowlevel.checkpoint()
                for scope in rng.sample(scopes, 5):
                    scope.cancel()
            await scheduler.aclose(cancel=True)
        stats = scheduler.stats()
        stats_spend = await scheduler.spend()

    assert len(outcomes) == 600
    assert set(outcomes) <= {
        "result",
        "cancelled",
        "SchedulerClosed",
        "BackendTimeout",
        "RateLimited",
        "BackendUnavailable",
    }
    assert "SchedulerClosed" in outcomes and "result" in outcomes
    assert stats.resolved == stats.submitted <= 600
    assert stats.in_flight == 0
    for spend in stats_spend.values():
        assert spend.reserved == Usage() and spend.open_reservations == 0
    assert stats_spend["capped"].settled.units <= 150


async def test_cancellation_during_an_async_settle_neither_double_closes_nor_crashes() -> None:
    # A networked ledger awaits inside settle; a caller cancelled after the charge was
    # committed must not make the scheduler refund the same reservation a second time.
    committed = anyio.Event()

    class AckingLedger(InMemoryLedger):
        async def settle(self, reservation: Reservation, actual: Amount) -> Amount:
            charged = await super().settle(reservation, actual)
            committed.set()
            await anyio.sleep(0.01)  # the store's acknowledgement
            return charged

    ledger = AckingLedger()
    async with Scheduler(
        backend=ScriptedBackend({"q": "The answer is 3."}),
        average_budget=1,
        ledger=ledger,
        batching=BatchingConfig(max_wait_s=0.0),
    ) as scheduler:
        async with anyio.create_task_group() as tg:

            async def caller() -> None:
                await scheduler.submit("q")

            tg.start_soon(caller)
            await committed.wait()
            tg.cancel_scope.cancel()
        result = await scheduler.submit("q")
    assert result.answer == "3"
    spend = (await ledger.snapshot())["default"]
    assert spend.open_reservations == 0 and spend.reserved == Usage()
    assert spend.settled.units == 2


async def test_deadline_fires_while_the_request_waits_behind_busy_workers() -> None:
    release = anyio.Event()

    async def handler(prompt: str, n: int, params: GenerationParams) -> list[str]:
        if prompt == "slow":
            await release.wait()
        return ["The answer is 3."] * n

    backend = ScriptedBackend(handler)
    async with Scheduler(
        backend=backend,
        average_budget=1,
        max_concurrency=1,
        batching=BatchingConfig(max_wait_s=0.0),
    ) as scheduler:
        async with anyio.create_task_group() as tg:
            tg.start_soon(scheduler.submit, "slow")
            while not backend.calls:
                await anyio.lowlevel.checkpoint()
            # The only worker is busy: the queued request must still fail at its deadline.
            with anyio.fail_after(5), pytest.raises(RequestTimeout, match=r"timeout_s=0.01"):
                await scheduler.submit("queued", timeout_s=0.01)
            release.set()
        stats = scheduler.stats()
        stats_spend = await scheduler.spend()
    assert [call.prompt for call in backend.calls] == ["slow"]
    assert (stats.completed, stats.failed) == (1, 1)
    assert stats_spend["default"].open_reservations == 0


async def test_a_backend_returning_garbage_fails_typed_and_is_charged_its_worst_case() -> None:
    class Broken:
        model = "broken"

        async def generate(self, prompt: str, *, n: int, params: GenerationParams) -> Any:
            return None  # not a Generation

        async def aclose(self) -> None:
            pass

    async with Scheduler(backend=Broken(), average_budget=1) as scheduler:
        with pytest.raises(BackendError, match=r"'broken' returned NoneType, not a Generation"):
            await scheduler.submit("q")
        spend = (await scheduler.spend())["default"]
    # A reply that says nothing true about what was generated counts as the call's worst case
    # (the prompt's bound, 1 byte + 64 overhead, and max_tokens), never more than was held.
    assert spend.open_reservations == 0
    assert spend.settled == Usage(prompt_tokens=65, completion_tokens=64, units=1)


async def test_a_failing_ledger_refund_still_resolves_the_request_and_spares_the_scheduler(
    log_events: list[dict[str, Any]],
) -> None:
    class FlakyStore(InMemoryLedger):
        async def refund(self, reservation: Reservation) -> None:
            raise ConnectionError("quota store unreachable")

    backend = ScriptedBackend({"q": "The answer is 3."}, faults=[BackendRejected("400")])
    async with Scheduler(
        backend=backend, average_budget=1, ledger=FlakyStore(), retry=FAST_RETRY
    ) as scheduler:
        with anyio.fail_after(5), pytest.raises(BackendRejected):
            await scheduler.submit("q")
        assert (await scheduler.submit("q")).answer == "3"  # still serving
    failed = [event for event in log_events if event["event"] == "ledger.close_failed"]
    assert len(failed) == 1 and "ConnectionError" in failed[0]["error"]


async def test_negative_token_counts_from_a_backend_never_credit_a_quota() -> None:
    class Miscounting:
        model = "miscounting"

        async def generate(self, prompt: str, *, n: int, params: GenerationParams) -> Generation:
            done = Completion(text="The answer is 3.", tokens=-500)
            return Generation(completions=(done,) * n, prompt_tokens=-100)

        async def aclose(self) -> None:
            pass

    ledger = InMemoryLedger(default_quota=QuotaConfig(tokens=10_000))
    async with Scheduler(backend=Miscounting(), average_budget=1, ledger=ledger) as scheduler:
        with pytest.raises(BackendError, match=r"prompt_tokens = -100; token counts must be"):
            await scheduler.submit("q")
    spend = (await ledger.snapshot())["default"]
    # Charged the call's worst case (the hold), never credited.
    assert spend.settled == Usage(prompt_tokens=65, completion_tokens=64, units=1)
    assert spend.open_reservations == 0


class _BrokenProcedure:
    """A plug-in procedure breaking its contract in one of two ways."""

    def __init__(self, *, planned_n: int = 1, outcome: object = None) -> None:
        self.planned_n = planned_n
        self.outcome = outcome

    def plan(self, budget: int) -> Sequence[PlannedCall]:
        return [PlannedCall(None, self.planned_n)]

    async def run(self, request: Request, budget: int, context: Context) -> Outcome:
        await context.generate(request.prompt, n=1)
        return self.outcome  # type: ignore[return-value]  # the contract violation under test


async def test_a_procedure_planning_negative_samples_is_refused_before_it_reserves() -> None:
    ledger = InMemoryLedger(default_quota=QuotaConfig(tokens=10_000))
    backend = ScriptedBackend()
    async with Scheduler(
        backend=backend, average_budget=1, ledger=ledger, procedure=_BrokenProcedure(planned_n=-50)
    ) as scheduler:
        with pytest.raises(UsageError, match=r"_BrokenProcedure.plan\(1\) planned n=-50"):
            await scheduler.submit("q")
    assert not backend.calls
    # The cost model refuses the plan before the ledger is asked to hold anything.
    assert "default" not in await ledger.snapshot()


async def test_a_procedure_returning_something_other_than_an_outcome_fails_typed() -> None:
    ledger = InMemoryLedger()
    async with Scheduler(
        backend=ScriptedBackend(), average_budget=1, ledger=ledger, procedure=_BrokenProcedure()
    ) as scheduler:
        with pytest.raises(UsageError, match=r"_BrokenProcedure.run returned NoneType"):
            await scheduler.submit("q")
    spend = (await ledger.snapshot())["default"]
    # The sample it drew was generated, so it is charged though the request failed.
    assert spend.open_reservations == 0
    assert spend.settled == Usage(prompt_tokens=1, completion_tokens=4, units=1)


async def test_a_cancelled_host_fails_the_batch_still_being_gathered() -> None:
    # The scheduler's tasks are cancelled together with the `async with` body by an outer
    # scope; a caller in another task must still hear about the request the batcher held.
    outcomes: list[BaseException] = []
    async with anyio.create_task_group() as callers:
        with anyio.CancelScope() as host:
            async with Scheduler(
                backend=ScriptedBackend(),
                average_budget=1,
                batching=BatchingConfig(max_batch_size=8, max_wait_s=60.0),
            ) as scheduler:

                async def caller() -> None:
                    try:
                        await scheduler.submit("q")
                    except SchedulerClosed as exc:
                        outcomes.append(exc)

                callers.start_soon(caller)
                while (stats := scheduler.stats()).submitted == 0 or stats.queued:
                    await anyio.lowlevel.checkpoint()  # until the batcher holds the request
                host.cancel()
                await anyio.sleep_forever()
        with anyio.fail_after(5):
            while not outcomes:
                await anyio.lowlevel.checkpoint()
    assert len(outcomes) == 1


async def test_a_backend_failure_inside_the_policy_keeps_its_retryable_class() -> None:
    class EncoderDown:
        async def allocate(
            self, requests: Sequence[Request], total_budget: int, bounds: BudgetBounds
        ) -> list[int]:
            raise BackendUnavailable("encoder server restarting")

    async with Scheduler(
        backend=ScriptedBackend(),
        policy=EncoderDown(),
        average_budget=1,
        batching=BatchingConfig(max_batch_size=2, max_wait_s=30.0),
    ) as scheduler:
        errors: list[BaseException] = []

        async def submit(i: int) -> None:
            with pytest.raises(BackendUnavailable) as info:
                await scheduler.submit(f"q{i}")
            errors.append(info.value)

        async with anyio.create_task_group() as tg:
            for i in range(2):
                tg.start_soon(submit, i)
    assert len(errors) == 2 and errors[0] is not errors[1]
    assert all(isinstance(e, RetryableError) for e in errors)
    assert "encoder server restarting" in str(errors[0])


async def test_a_retry_that_could_only_start_after_the_deadline_fails_at_once() -> None:
    # Sleeping out a 60 s Retry-After under a 5 s deadline would hold a worker and the
    # reservation for 5 s only to time out; the caller gets the server's answer now.
    backend = ScriptedBackend(faults=[RateLimited("429", retry_after=60.0)])
    async with Scheduler(
        backend=backend, average_budget=1, request_timeout_s=5.0, retry=FAST_RETRY
    ) as scheduler:
        with anyio.fail_after(2), pytest.raises(RateLimited) as caught:
            await scheduler.submit("q")
        spend = (await scheduler.spend())["default"]
    assert caught.value.retry_after == 60.0
    assert len(backend.calls) == 1 and spend.open_reservations == 0
