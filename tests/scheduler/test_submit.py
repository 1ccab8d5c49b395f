"""Scheduler.submit: results, per-request options, batching, lifecycle, backpressure, events."""

import math
from collections.abc import Sequence
from typing import Any

import anyio
import pytest

from howhard import (
    BatchingConfig,
    Price,
    QuotaConfig,
    Request,
    RetryConfig,
    Scheduler,
    SchedulerConfig,
)
from howhard.backends import ScriptedBackend
from howhard.errors import (
    ConfigError,
    InvalidRequest,
    QueueFull,
    QuotaExceeded,
    RateLimited,
    RequestTimeout,
    SchedulerClosed,
    UnknownTenant,
    UsageError,
)
from howhard.procedures import BestOfK, SelfConsistency
from howhard.scheduler import InMemoryLedger, SchedulerState
from howhard.scoring import ExactMatch
from howhard.types import BudgetBounds, Completion, Generation, GenerationParams

pytestmark = pytest.mark.anyio

WIDE = BatchingConfig(max_batch_size=64, max_wait_s=0.001)


def answering(text: str) -> ScriptedBackend:
    return ScriptedBackend(lambda prompt, n, params: [text] * n)


class RecordingPolicy:
    """Uniform split that records every batch it sees."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[str], int]] = []

    async def allocate(
        self, requests: Sequence[Request], total_budget: int, bounds: BudgetBounds
    ) -> list[int]:
        self.batches.append(([r.prompt for r in requests], total_budget))
        base, extra = divmod(total_budget, len(requests))
        return [base + (i < extra) for i in range(len(requests))]


async def test_submit_returns_a_result_with_answer_budget_and_usage() -> None:
    backend = answering("The answer is 391.")
    async with Scheduler(backend=backend, average_budget=4, batching=WIDE) as scheduler:
        result = await scheduler.submit("What is 17 * 23?", tenant="team-a")
    assert result.answer == "391"
    assert result.budget == 4
    assert result.tenant == "team-a"
    assert len(result.candidates) == 4
    assert result.chosen is not None and result.chosen.answer == "391"
    assert result.usage.units == 4
    assert result.usage.completion_tokens == 4 * 4  # whitespace tokens of the answer
    assert result.usage.prompt_tokens == 5
    assert result.latency_s >= 0
    assert [call.n for call in backend.calls] == [4]  # one call, n = budget


async def test_request_options_reach_scorer_and_backend() -> None:
    backend = ScriptedBackend(lambda prompt, n, params: ["so the answer is 5"] * n)
    params = GenerationParams(max_tokens=5, temperature=0.0)
    async with Scheduler(
        backend=backend, procedure=BestOfK(ExactMatch()), average_budget=2, batching=WIDE
    ) as scheduler:
        right = await scheduler.submit("2 + 3?", reference="5", params=params)
        wrong = await scheduler.submit(Request(prompt="2 + 2?", reference="4"), tenant="t")
    assert right.chosen is not None and right.chosen.score == 1.0
    assert wrong.chosen is not None and wrong.chosen.score == 0.0
    assert wrong.tenant == "t"
    assert backend.calls[0].params == params
    assert backend.calls[1].params.max_tokens == 64  # the scheduler's default
    assert right.usage.completion_tokens == 2 * 5


async def test_budget_zero_abstains_with_default_answer_and_spends_nothing() -> None:
    backend = answering("unused")

    class Nothing:
        async def allocate(
            self, requests: Sequence[Request], total_budget: int, bounds: BudgetBounds
        ) -> list[int]:
            return [0] * len(requests)

    async with Scheduler(
        backend=backend,
        policy=Nothing(),
        procedure=SelfConsistency(default_answer="I don't know"),
        average_budget=1,
        batching=WIDE,
    ) as scheduler:
        result = await scheduler.submit("hard question")
        spend = (await scheduler.spend())["default"]
    assert result.abstained
    assert result.answer == "I don't know"
    assert result.chosen is None
    assert result.usage.total_tokens == 0 and result.usage.units == 0
    assert backend.calls == []
    assert spend.settled.total_tokens == 0


async def test_batch_closes_at_max_batch_size_with_the_batch_total() -> None:
    policy = RecordingPolicy()
    batching = BatchingConfig(max_batch_size=3, max_wait_s=30.0)
    async with (
        Scheduler(
            backend=answering("1"), policy=policy, average_budget=2, batching=batching
        ) as scheduler,
        anyio.create_task_group() as tg,
    ):
        for i in range(6):
            tg.start_soon(scheduler.submit, f"q{i}")
    assert [len(prompts) for prompts, _ in policy.batches] == [3, 3]
    assert [total for _, total in policy.batches] == [6, 6]


async def test_batch_closes_after_max_wait_when_not_full() -> None:
    policy = RecordingPolicy()
    batching = BatchingConfig(max_batch_size=1000, max_wait_s=0.001)
    async with Scheduler(
        backend=answering("1"), policy=policy, average_budget=1, batching=batching
    ) as scheduler:
        with anyio.fail_after(10):  # a batch that never closed would hang here
            await scheduler.submit("alone")
    assert policy.batches == [(["alone"], 1)]


async def test_closed_scheduler_refuses_submit_clearly() -> None:
    scheduler = Scheduler(backend=answering("1"), average_budget=1)
    with pytest.raises(SchedulerClosed, match="submit inside `async with"):
        await scheduler.submit("too early")
    async with scheduler:
        assert scheduler.state is SchedulerState.RUNNING
    assert scheduler.state is SchedulerState.CLOSED
    with pytest.raises(SchedulerClosed, match="scheduler is closed"):
        await scheduler.submit("too late")
    with pytest.raises(UsageError, match="started once"):
        async with scheduler:
            pass


async def test_close_drains_queued_work() -> None:
    release = anyio.Event()

    async def slow(prompt: str, n: int, params: GenerationParams) -> list[str]:
        await release.wait()
        return ["ok"] * n

    results: list[Any] = []
    async with Scheduler(
        backend=ScriptedBackend(slow), average_budget=1, batching=WIDE, max_concurrency=2
    ) as scheduler:

        async def submit(i: int) -> None:
            results.append(await scheduler.submit(f"q{i}"))

        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(submit, i)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(scheduler.close)
            await anyio.wait_all_tasks_blocked()
            assert scheduler.state is SchedulerState.CLOSING
            with pytest.raises(SchedulerClosed):
                await scheduler.submit("after close")
            release.set()
    assert len(results) == 10
    assert all(r.answer == "ok" for r in results)


async def test_aclose_cancel_fails_queued_and_running_requests_and_refunds() -> None:
    async def forever(prompt: str, n: int, params: GenerationParams) -> list[str]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    errors: list[BaseException] = []
    async with Scheduler(
        backend=ScriptedBackend(forever), average_budget=2, batching=WIDE, max_concurrency=4
    ) as scheduler:

        async def submit(i: int) -> None:
            try:
                await scheduler.submit(f"q{i}")
            except SchedulerClosed as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(submit, i)
            await anyio.wait_all_tasks_blocked()
            assert scheduler.stats().in_flight == 4
            await scheduler.aclose(cancel=True)
    assert len(errors) == 20
    stats = scheduler.stats()
    stats_spend = await scheduler.spend()
    assert stats.state is SchedulerState.CLOSED
    assert stats.in_flight == 0 and stats.failed == 20
    spend = stats_spend["default"]
    assert spend.open_reservations == 0 and spend.reserved.units == 0
    assert spend.settled.units == 0


async def test_exception_in_body_cancels_work_and_propagates() -> None:
    async def forever(prompt: str, n: int, params: GenerationParams) -> list[str]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    outcomes: list[BaseException] = []
    scheduler = Scheduler(backend=ScriptedBackend(forever), average_budget=1, batching=WIDE)

    async def submit() -> None:
        try:
            await scheduler.submit("q")
        except SchedulerClosed as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as tg:
        with pytest.raises(RuntimeError, match="boom"):
            async with scheduler:
                tg.start_soon(submit)
                await anyio.wait_all_tasks_blocked()
                raise RuntimeError("boom")
    assert scheduler.state is SchedulerState.CLOSED
    assert len(outcomes) == 1


async def test_backpressure_blocking_submit_waits_and_nowait_raises_queue_full() -> None:
    gate = anyio.Event()

    class Gated:
        async def allocate(
            self, requests: Sequence[Request], total_budget: int, bounds: BudgetBounds
        ) -> list[int]:
            await gate.wait()
            return [1] * len(requests)

    batching = BatchingConfig(max_batch_size=1, max_wait_s=0.0)
    done: list[str] = []
    async with Scheduler(
        backend=answering("ok"), policy=Gated(), average_budget=1, batching=batching, max_queue=2
    ) as scheduler:

        async def submit(prompt: str) -> None:
            await scheduler.submit(prompt)
            done.append(prompt)

        async with anyio.create_task_group() as tg:
            tg.start_soon(submit, "held by the policy")
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(submit, "queued 1")
            tg.start_soon(submit, "queued 2")
            await anyio.wait_all_tasks_blocked()
            assert scheduler.stats().queued == 2
            with pytest.raises(QueueFull, match="max_queue=2"):
                await scheduler.submit_nowait("rejected at once")
            tg.start_soon(submit, "waits for space")
            await anyio.wait_all_tasks_blocked()
            assert scheduler.stats().waiting_submitters == 1
            assert done == []
            gate.set()
    assert sorted(done) == sorted(["held by the policy", "queued 1", "queued 2", "waits for space"])
    assert scheduler.stats().failed == 1  # only the QueueFull


async def test_invalid_input_gets_a_typed_error() -> None:
    async with Scheduler(backend=answering("1"), average_budget=1, batching=WIDE) as scheduler:
        with pytest.raises(InvalidRequest, match="prompt must be a non-empty string"):
            await scheduler.submit("   ")
        with pytest.raises(
            InvalidRequest, match=r"timeout_s must be a finite number of seconds in \(0, 604800\]"
        ):
            await scheduler.submit("q", timeout_s=-1)
        assert scheduler.stats().submitted == 0
    with pytest.raises(ConfigError, match="average_budget"):
        Scheduler(backend=answering("1"), average_budget=-2.0)


async def test_stats_and_structured_events(log_events: list[dict[str, Any]]) -> None:
    async with Scheduler(backend=answering("7"), average_budget=2, batching=WIDE) as scheduler:
        await scheduler.submit("q", tenant="a")
        stats = scheduler.stats()
        stats_spend = await scheduler.spend()
    assert stats.submitted == stats.completed == 1
    assert stats_spend["a"].settled.units == 2
    names = [event["event"] for event in log_events]
    assert "batch.formed" in names and "batch.allocated" in names
    done = next(event for event in log_events if event["event"] == "request.done")
    assert done["tenant"] == "a" and done["budget"] == 2 and done["outcome"] == "answered"


async def test_dispatch_never_exceeds_max_concurrency() -> None:
    gate = anyio.Event()
    running = 0
    peak = 0

    async def handler(prompt: str, n: int, params: GenerationParams) -> list[str]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1
        return ["ok"] * n

    async with (
        Scheduler(
            backend=ScriptedBackend(handler), average_budget=1, batching=WIDE, max_concurrency=5
        ) as scheduler,
        anyio.create_task_group() as tg,
    ):
        for i in range(40):
            tg.start_soon(scheduler.submit, f"q{i}")
        await anyio.wait_all_tasks_blocked()
        assert running == 5 and scheduler.stats().in_flight == 5
        gate.set()
    assert peak == 5


async def test_usage_is_priced_per_model_and_charged_to_the_tenant() -> None:
    ledger = InMemoryLedger()
    async with Scheduler(
        backend=answering("one two"),
        average_budget=3,
        batching=WIDE,
        ledger=ledger,
        prices={"scripted": Price(input_per_mtok=1e6, output_per_mtok=2e6)},
    ) as scheduler:
        result = await scheduler.submit("a b c d", tenant="paying")
    # 4 prompt tokens at $1 each, 3 samples x 2 tokens at $2 each.
    assert result.usage.cost == pytest.approx(4 * 1.0 + 6 * 2.0)
    assert (await ledger.snapshot())["paying"].settled == result.usage


async def test_config_object_and_keyword_overrides_combine() -> None:
    config = SchedulerConfig(average_budget=2, max_budget=4, max_queue=7)
    scheduler = Scheduler(backend=answering("1"), config=config, max_queue=9)
    assert scheduler.config.average_budget == 2
    assert scheduler.config.max_budget == 4
    assert scheduler.config.max_queue == 9
    with pytest.raises(ConfigError, match="max_concurrency"):
        Scheduler(backend=answering("1"), average_budget=1, max_concurrency=0)


async def test_request_that_expired_before_dispatch_never_reaches_the_backend() -> None:
    class Slow:
        async def allocate(
            self, requests: Sequence[Request], total_budget: int, bounds: BudgetBounds
        ) -> list[int]:
            await anyio.sleep(0.02)  # outlives the request's 1 ms deadline
            return [1] * len(requests)

    backend = answering("1")
    async with Scheduler(
        backend=backend, policy=Slow(), average_budget=1, batching=WIDE
    ) as scheduler:
        with pytest.raises(RequestTimeout, match=r"timeout_s=0\.001"):
            await scheduler.submit("q", timeout_s=0.001)
        spend = await scheduler.spend()
    assert backend.calls == []
    assert spend == {}  # nothing was even reserved


async def test_unknown_tenant_is_refused_at_submit() -> None:
    ledger = InMemoryLedger({"known": QuotaConfig(units=10)})
    async with Scheduler(
        backend=answering("1"), average_budget=1, batching=WIDE, ledger=ledger
    ) as scheduler:
        with pytest.raises(UnknownTenant, match="tenant 'stranger' has no quota"):
            await scheduler.submit("q", tenant="stranger")
        stats = scheduler.stats()
    assert stats.submitted == 0 and stats.batches == 0


async def test_close_fails_callers_still_waiting_for_queue_space() -> None:
    gate = anyio.Event()

    class Gated:
        async def allocate(
            self, requests: Sequence[Request], total_budget: int, bounds: BudgetBounds
        ) -> list[int]:
            await gate.wait()
            return [1] * len(requests)

    outcomes: dict[str, str] = {}
    batching = BatchingConfig(max_batch_size=1, max_wait_s=0.0)
    async with Scheduler(
        backend=answering("7"), policy=Gated(), average_budget=1, batching=batching, max_queue=1
    ) as scheduler:

        async def submit(name: str) -> None:
            try:
                outcomes[name] = (await scheduler.submit(name)).answer or ""
            except SchedulerClosed:
                outcomes[name] = "closed"

        async with anyio.create_task_group() as tg:
            for name in ("running", "queued", "waiting"):
                tg.start_soon(submit, name)
                await anyio.wait_all_tasks_blocked()
            assert scheduler.stats().waiting_submitters == 1
            tg.start_soon(scheduler.close)
            await anyio.wait_all_tasks_blocked()
            gate.set()
    assert outcomes == {"running": "7", "queued": "7", "waiting": "closed"}


async def test_quota_and_retry_events_are_emitted(log_events: list[dict[str, Any]]) -> None:
    backend = ScriptedBackend({"q": "answer: 1"}, faults=[RateLimited("429", retry_after=0.0)])
    ledger = InMemoryLedger({"a": QuotaConfig(units=1)})
    async with Scheduler(
        backend=backend,
        average_budget=1,
        batching=WIDE,
        ledger=ledger,
        retry=RetryConfig(initial_backoff_s=0.0),
    ) as scheduler:
        await scheduler.submit("q", tenant="a")
        with pytest.raises(QuotaExceeded):
            await scheduler.submit("q", tenant="a")
    retry = next(e for e in log_events if e["event"] == "backend.retry")
    assert retry["error"] == "RateLimited" and retry["attempt"] == 1
    rejected = next(e for e in log_events if e["event"] == "quota.rejected")
    assert rejected["tenant"] == "a" and rejected["budget"] == 1


def test_an_infinite_carry_limit_is_a_config_error_not_a_crash_in_the_batcher() -> None:
    with pytest.raises(ConfigError, match="carry_limit"):
        Scheduler(
            backend=answering("1"), config=SchedulerConfig(average_budget=1, carry_limit=math.inf)
        )


@pytest.mark.parametrize("field", ["input_per_mtok", "output_per_mtok", "per_second"])
def test_an_infinite_price_is_a_config_error(field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        Price(**{field: math.inf})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tenant": ""}, "tenant must be a non-empty string"),
        ({"params": {"max_tokens": 5}}, "params must be a GenerationParams"),
        ({"timeout_s": "5"}, "timeout_s must be a number"),
        ({"timeout_s": True}, "timeout_s must be a number"),
        ({"metadata": [1]}, "metadata must be a mapping"),
    ],
)
async def test_malformed_submit_options_are_refused_before_anything_runs(
    options: dict[str, Any], message: str
) -> None:
    backend = answering("1")
    async with Scheduler(backend=backend, average_budget=1, batching=WIDE) as scheduler:
        with pytest.raises(InvalidRequest, match=message):
            await scheduler.submit("q", **options)
        with pytest.raises(InvalidRequest, match=message):
            await scheduler.submit(Request(prompt="q"), **options)
        stats = scheduler.stats()
        stats_spend = await scheduler.spend()
    assert stats.submitted == 0 and not backend.calls and stats_spend == {}


async def test_a_cost_quota_on_a_per_second_model_needs_a_timeout_to_reserve_against() -> None:
    # Per-second cost is reserved as the request's timeout; without one it is unbounded.
    ledger = InMemoryLedger(
        {"metered": QuotaConfig(cost=10.0), "unmetered": QuotaConfig(units=100)}
    )
    backend = answering("1")
    async with Scheduler(
        backend=backend,
        average_budget=1,
        batching=WIDE,
        ledger=ledger,
        prices={"scripted": Price(per_second=0.5)},
        config=SchedulerConfig(average_budget=1, request_timeout_s=None),  # no default deadline
    ) as scheduler:
        with pytest.raises(
            InvalidRequest,
            match=r"tenant 'metered' has a cost quota and model 'scripted' is priced per second "
            r"\(per_second=0.5\).*pass timeout_s=",
        ):
            await scheduler.submit("q", tenant="metered")
        assert not backend.calls
        timed = await scheduler.submit("q", tenant="metered", timeout_s=4.0)
        untimed = await scheduler.submit("q", tenant="unmetered")
    assert timed.answer == untimed.answer == "1"


class OverReporting:
    """A backend that reports far more generated tokens than ``max_tokens`` allows."""

    model = "liar"

    async def generate(self, prompt: str, *, n: int, params: GenerationParams) -> Generation:
        completion = Completion(text="The answer is 4.", tokens=10 * params.max_tokens)
        return Generation(completions=(completion,) * n, prompt_tokens=1)

    async def aclose(self) -> None:
        pass


async def test_an_over_report_is_bounded_at_max_tokens_and_flagged(
    log_events: list[dict[str, Any]],
) -> None:
    ledger = InMemoryLedger()
    async with Scheduler(
        backend=OverReporting(),
        average_budget=2,
        batching=WIDE,
        ledger=ledger,
        params=GenerationParams(max_tokens=8),
    ) as scheduler:
        result = await scheduler.submit("q")
        stats = scheduler.stats()
    settled = (await ledger.snapshot())["default"].settled
    # The backend said 80 tokens per sample; a sample counts at most max_tokens.
    assert result.usage.completion_tokens == settled.completion_tokens == 2 * 8
    bounded = [e for e in log_events if e["event"] == "backend.usage_bounded"]
    assert len(bounded) == 1 and "80 tokens > max_tokens=8" in bounded[0]["bounded"][0]
    assert stats.usage_violations == 1


async def test_a_degraded_request_is_logged_with_what_it_asked_for(
    log_events: list[dict[str, Any]],
) -> None:
    ledger = InMemoryLedger({"small": QuotaConfig(units=3, on_exceed="degrade")})
    async with Scheduler(
        backend=answering("4"), average_budget=5, batching=WIDE, ledger=ledger
    ) as scheduler:
        result = await scheduler.submit("q", tenant="small")
    assert result.budget == 3 and result.metadata["requested_budget"] == 5
    degraded = [e for e in log_events if e["event"] == "quota.degraded"]
    assert degraded == [
        {
            "event": "quota.degraded",
            "tenant": "small",
            "requested": 5,
            "granted": 3,
            "log_level": "info",
        }
    ]


async def test_a_price_table_left_on_the_ledger_still_prices_requests() -> None:
    with pytest.warns(DeprecationWarning, match="prices belong to the scheduler"):
        ledger = InMemoryLedger(prices={"scripted": Price(output_per_mtok=1e6)})
    async with Scheduler(
        backend=answering("one two"), average_budget=1, batching=WIDE, ledger=ledger
    ) as scheduler:
        result = await scheduler.submit("q")
    assert result.usage.cost == pytest.approx(2.0)  # 2 generated tokens at $1 each
