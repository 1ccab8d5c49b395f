"""Nothing gets past the ledger: backend usage is validated, bounded, and generated work is paid.

The rules (``howhard.procedures.accounting``, ``howhard.ledger.rules``): invalid figures fail
the request with ``BackendError`` and are charged the call's worst case; over-reports are
bounded by what was asked (``n`` samples of at most ``max_tokens``); a request that fails after
its backend answered is charged what was generated; whatever a backend says, a charge never
passes the reservation and a tenant's spend never passes its quota.
"""

import contextlib
import math

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from howhard import BatchingConfig, QuotaConfig, Scheduler
from howhard.errors import BackendError, QuotaExceeded, RequestTimeout, ScoringError, UsageError
from howhard.ledger import Amount, InMemoryLedger
from howhard.ledger.rules import charge
from howhard.procedures import BestOfK
from howhard.testing.chaos import HostileBackend, HostileScorer, tagged
from howhard.types import GenerationParams, Usage

pytestmark = pytest.mark.anyio

PARAMS = GenerationParams(max_tokens=8)
# The worst case of one n=2 call on the prompt "q [fault:…]": its UTF-8 bytes + 64 overhead.
WORST = {"units": 2, "completion_tokens": 2 * 8}


def _all_ints(usage: Usage) -> bool:
    return all(
        type(v) is int for v in (usage.prompt_tokens, usage.completion_tokens, usage.units)
    ) and math.isfinite(usage.cost)


INVALID = [
    "nan_tokens",
    "inf_tokens",
    "negative_tokens",
    "fractional_tokens",
    "str_tokens",
    "none_tokens",
    "bool_tokens",
    "str_completions",
    "str_text",
    "not_generation",
]


@pytest.mark.parametrize("fault", INVALID)
async def test_invalid_usage_is_a_backend_error_charged_the_calls_worst_case(fault: str) -> None:
    ledger = InMemoryLedger()
    prompt = tagged("q", fault)
    async with Scheduler(
        backend=HostileBackend(), average_budget=2, ledger=ledger, params=PARAMS
    ) as scheduler:
        with pytest.raises(BackendError, match=r"backend 'hostile' (reported|returned)"):
            await scheduler.submit(prompt)
        stats = scheduler.stats()
    spend = (await ledger.snapshot())["default"]
    bound = len(prompt.encode()) + 64
    assert spend.settled == Usage(prompt_tokens=bound, **WORST)
    assert spend.open_reservations == 0 and _all_ints(spend.settled)
    assert stats.usage_violations == 1


async def test_nan_usage_never_disables_a_quota() -> None:
    # Observed: once a NaN count reached the totals, 500 of 500 requests passed a 1,000-token
    # quota. Now each is charged its worst case, and the quota holds.
    ledger = InMemoryLedger(default_quota=QuotaConfig(tokens=1_000))
    outcomes: list[object] = []
    async with Scheduler(
        backend=HostileBackend(), average_budget=1, ledger=ledger, params=PARAMS
    ) as scheduler:
        for i in range(500):
            try:
                outcomes.append(await scheduler.submit(tagged(f"q{i}", "nan_tokens")))
            except (BackendError, QuotaExceeded) as exc:
                outcomes.append(exc)
    spend = (await ledger.snapshot())["default"]
    assert _all_ints(spend.settled) and spend.settled.total_tokens <= 1_000
    assert sum(isinstance(o, QuotaExceeded) for o in outcomes) > 450


@pytest.mark.parametrize("fault", ["over_report", "huge_prompt", "extra_completions"])
async def test_over_reports_are_bounded_by_what_was_asked(fault: str) -> None:
    ledger = InMemoryLedger(default_quota=QuotaConfig(tokens=10_000))
    prompt = tagged("q", fault)
    async with Scheduler(
        backend=HostileBackend(), average_budget=2, ledger=ledger, params=PARAMS
    ) as scheduler:
        result = await scheduler.submit(prompt)
        stats = scheduler.stats()
    spend = (await ledger.snapshot())["default"]
    assert len(result.candidates) == 2  # never an answer from a sample nobody asked for
    assert result.usage.completion_tokens <= 2 * 8
    assert result.usage.prompt_tokens <= len(prompt.encode()) + 64
    assert spend.settled == Usage(
        prompt_tokens=result.usage.prompt_tokens,
        completion_tokens=result.usage.completion_tokens,
        units=2,
    )
    assert stats.usage_violations == 1


async def test_logprob_entries_beyond_max_tokens_are_dropped() -> None:
    async with Scheduler(
        backend=HostileBackend(),
        average_budget=1,
        params=GenerationParams(max_tokens=8, logprobs=True),
    ) as scheduler:
        result = await scheduler.submit(tagged("q", "long_logprobs"))
    assert result.chosen is not None and result.chosen.completion.logprobs is not None
    assert len(result.chosen.completion.logprobs) == 8


@pytest.mark.parametrize(
    ("fault", "error", "timeout_s"),
    [("scorer_raises", ScoringError, None), ("scorer_hang", RequestTimeout, 0.05)],
    ids=["a scorer that raises", "a deadline passing while scoring"],
)
async def test_a_request_failing_after_generation_is_charged_what_was_generated(
    fault: str, error: type[Exception], timeout_s: float | None
) -> None:
    ledger = InMemoryLedger()
    async with Scheduler(
        backend=HostileBackend(),
        procedure=BestOfK(HostileScorer()),
        average_budget=2,
        ledger=ledger,
        params=PARAMS,
    ) as scheduler:
        with pytest.raises(error):
            await scheduler.submit(tagged("q", fault), timeout_s=timeout_s)
        await anyio.wait_all_tasks_blocked()
    spend = (await ledger.snapshot())["default"]
    # Two samples of "The answer is 4." (4 tokens each) on a 2-word prompt were generated.
    assert spend.settled == Usage(prompt_tokens=2, completion_tokens=8, units=2)
    assert spend.open_reservations == 0


async def test_work_never_generated_is_refunded() -> None:
    ledger = InMemoryLedger()
    async with Scheduler(
        backend=HostileBackend(), average_budget=2, ledger=ledger, params=PARAMS
    ) as scheduler:
        with pytest.raises(BackendError):
            await scheduler.submit(tagged("q", "rejected"))
    spend = (await ledger.snapshot())["default"]
    assert spend.settled == Usage() and spend.open_reservations == 0


# ---------------------------------------------------------------- properties

_AMOUNT_FIELD = st.one_of(
    st.integers(min_value=-5, max_value=10**6), st.floats(allow_nan=True), st.booleans()
)


@given(
    held=st.tuples(*[st.integers(min_value=0, max_value=10**6)] * 4).map(lambda t: Amount(*t)),
    actual=st.tuples(*[_AMOUNT_FIELD] * 4).map(lambda t: Amount(*t)),
)
def test_a_charge_is_refused_or_an_int_amount_within_the_hold(held: Amount, actual: Amount) -> None:
    try:
        charged = charge(held, actual)
    except UsageError:
        return
    assert all(type(v) is int and 0 <= v <= h for v, h in zip(charged, held, strict=True))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    faults=st.lists(st.sampled_from([*INVALID, "over_report", "huge_prompt", "ok"]), max_size=12)
)
def test_whatever_a_backend_reports_a_quota_is_never_passed(faults: list[str]) -> None:
    quota = QuotaConfig(units=10, tokens=600)

    async def scenario() -> None:
        ledger = InMemoryLedger(default_quota=quota)
        async with Scheduler(
            backend=HostileBackend(),
            average_budget=2,
            ledger=ledger,
            params=PARAMS,
            batching=BatchingConfig(max_batch_size=4, max_wait_s=0.0),
        ) as scheduler:

            async def one(i: int, fault: str) -> None:
                with contextlib.suppress(BackendError, QuotaExceeded):
                    await scheduler.submit(tagged(f"q{i}", fault) if fault != "ok" else f"q{i}")
                spend = (await ledger.snapshot())["default"]
                held = spend.window + spend.reserved
                assert held.units <= 10 and held.total_tokens <= 600
                assert _all_ints(spend.settled)

            async with anyio.create_task_group() as group:
                for i, fault in enumerate(faults):
                    group.start_soon(one, i, fault)
        spend = (await ledger.snapshot()).get("default")
        assert spend is None or (spend.open_reservations == 0 and spend.settled.units <= 10)

    anyio.run(scenario)
