"""The batcher and the budget carry rule."""

import math
import time
from collections.abc import Sequence
from fractions import Fraction

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from howhard import BatchingConfig, BudgetBounds, Request, Scheduler
from howhard.backends import ScriptedBackend
from howhard.policies import UniformPolicy
from howhard.scheduler import BudgetCarry
from howhard.scheduler.batcher import TIMER_SLACK_S, close_time, next_batch

pytestmark = pytest.mark.anyio


@given(
    average=st.sampled_from([0.3, 1.0, 2.5, 4.0, 7.25]),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=60),
    shares=st.lists(st.floats(0.0, 1.0), min_size=60, max_size=60),
)
def test_carry_rule_never_overspends_and_tracks_the_average(
    average: float, sizes: list[int], shares: list[float]
) -> None:
    carry = BudgetCarry(average, limit=average * 40)
    spent = 0
    for n, share in zip(sizes, shares, strict=False):
        total = carry.total(n)
        batch_spend = math.floor(total * share)
        carry.spend(n, batch_spend)
        spent += batch_spend
        assert 0 <= carry.carry <= Fraction(str(average)) * 40
    requests = sum(sizes)
    assert spent <= Fraction(str(average)) * requests  # never above the average


@given(
    average=st.sampled_from([0.3, 1.0, 2.5, 4.0, 7.25]),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=60),
)
def test_spending_everything_keeps_the_long_run_average_exact(
    average: float, sizes: list[int]
) -> None:
    carry = BudgetCarry(average, limit=average * 40)
    spent = 0
    for n in sizes:
        total = carry.total(n)
        carry.spend(n, total)
        spent += total
    # Exactly floor(B * N): the shortfall is only the fraction not yet worth a whole unit.
    assert spent == math.floor(Fraction(str(average)) * sum(sizes))
    assert carry.carry < 1


def test_carry_is_capped_so_an_idle_policy_cannot_bank_a_burst() -> None:
    carry = BudgetCarry(2.0, limit=10.0)
    for _ in range(100):
        carry.spend(5, 0)
    assert carry.carry == 10
    assert carry.total(5) == 20  # this batch's 10 plus at most the 10 banked


def test_overspending_the_total_is_refused() -> None:
    carry = BudgetCarry(1.0, limit=4.0)
    with pytest.raises(ValueError, match="exceeds the batch total"):
        carry.spend(2, 3)


async def test_scheduler_with_single_request_batches_spends_the_exact_average() -> None:
    seen: list[int] = []

    class Recording(UniformPolicy):
        async def allocate(
            self, requests: Sequence[Request], total_budget: int, bounds: BudgetBounds
        ) -> list[int]:
            budgets = await super().allocate(requests, total_budget, bounds)
            seen.extend(budgets)
            return budgets

    async with Scheduler(
        backend=ScriptedBackend(),
        policy=Recording(),
        average_budget=2.5,
        batching=BatchingConfig(max_batch_size=1, max_wait_s=0.0),
    ) as scheduler:
        for i in range(101):
            await scheduler.submit(f"q{i}")
    assert seen[:4] == [2, 3, 2, 3]
    assert sum(seen) == math.floor(2.5 * 101)


async def test_next_batch_takes_what_is_queued_up_to_the_size_limit() -> None:
    send, receive = anyio.create_memory_object_stream[int](10)
    with send, receive:
        for i in range(7):
            send.send_nowait(i)
        assert await next_batch(receive, max_batch_size=5, max_wait_s=30.0) == [0, 1, 2, 3, 4]
        assert await next_batch(receive, max_batch_size=5, max_wait_s=0.0) == [5, 6]
        send.close()
        assert await next_batch(receive, max_batch_size=5, max_wait_s=0.0) is None


async def test_next_batch_waits_for_late_arrivals_until_full() -> None:
    send, receive = anyio.create_memory_object_stream[int](10)
    batches: list[list[int] | None] = []

    async def batcher() -> None:
        batches.append(await next_batch(receive, max_batch_size=3, max_wait_s=30.0))

    with send, receive:
        async with anyio.create_task_group() as tg:
            tg.start_soon(batcher)
            for i in range(3):
                await anyio.wait_all_tasks_blocked()
                assert batches == []
                await send.send(i)
    assert batches == [[0, 1, 2]]


async def test_next_batch_returns_a_partial_batch_when_the_stream_ends() -> None:
    send, receive = anyio.create_memory_object_stream[int](10)
    with receive:
        send.send_nowait(1)
        send.close()
        assert await next_batch(receive, max_batch_size=5, max_wait_s=30.0) == [1]


async def test_wait_counts_from_the_first_items_arrival_not_its_receipt() -> None:
    send, receive = anyio.create_memory_object_stream[float](10)
    long_ago = time.monotonic() - 100.0
    with send, receive:
        send.send_nowait(long_ago)
        with anyio.fail_after(10):  # would wait 30 s if the clock started at receipt
            batch = await next_batch(
                receive, max_batch_size=5, max_wait_s=30.0, arrival=lambda item: item
            )
    assert batch == [long_ago]


async def test_a_batch_due_within_the_timer_slack_closes_without_waiting() -> None:
    # The loop would round a shorter wait up to a whole millisecond and close late; closing now
    # is closer to the deadline. The second item is already being sent when the batcher decides.
    send, receive = anyio.create_memory_object_stream[float](10)
    max_wait_s = 30.0
    almost_due = time.monotonic() - max_wait_s + TIMER_SLACK_S / 2
    with send, receive:
        send.send_nowait(almost_due)
        async with anyio.create_task_group() as tg:
            tg.start_soon(send.send, 0.0)
            batch = await next_batch(
                receive, max_batch_size=5, max_wait_s=max_wait_s, arrival=lambda item: item
            )
    assert batch == [almost_due]


def test_the_close_time_aims_the_timer_slack_early_but_never_more_than_half_the_wait() -> None:
    assert close_time(100.0, 0.005) == pytest.approx(100.0 + 0.005 - TIMER_SLACK_S)
    assert close_time(100.0, TIMER_SLACK_S) == pytest.approx(100.0 + TIMER_SLACK_S / 2)
    assert close_time(100.0, 0.0) == 100.0
