"""Sequential procedures: rounds of samples, stop rules, budgets, deadlines, and the scheduler
returning a stopped request's unused units to the stream."""

from __future__ import annotations

import math
from collections.abc import Sequence

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from howhard import Scheduler
from howhard.backends import ScriptedBackend
from howhard.config import BatchingConfig, RoundsConfig, SchedulerConfig
from howhard.errors import ConfigError
from howhard.ledger import InMemoryLedger
from howhard.policies import UniformPolicy
from howhard.procedures import (
    AdaptiveSelfConsistency,
    BetaRule,
    EscRule,
    PlannedCall,
    RetryingCaller,
    RoundState,
    SequentialBestOfK,
    StopReason,
)
from howhard.scoring import ExactMatch
from howhard.types import GenerationParams, Request

pytestmark = pytest.mark.anyio
PARAMS = GenerationParams(max_tokens=16)


def in_order(*texts: str) -> ScriptedBackend:
    """Answers ``texts`` one sample after another across calls (the last one repeats)."""
    drawn = 0

    def handler(prompt: str, n: int, params: GenerationParams) -> list[str]:
        nonlocal drawn
        out = [texts[min(drawn + i, len(texts) - 1)] for i in range(n)]
        drawn += n
        return out

    return ScriptedBackend(handler)


async def test_best_of_k_stops_at_the_first_passing_sample_and_reports_it() -> None:
    backend = in_order(
        "The answer is 1.", "The answer is 2.", "The answer is 3.", "The answer is 4."
    )
    procedure = SequentialBestOfK(ExactMatch(), config=RoundsConfig(schedule=(1, 2, 4)))
    caller = RetryingCaller(backend, PARAMS)
    outcome = await procedure.run(Request(prompt="2+2", reference="4"), 16, caller)
    # Rounds of 1, 2, 4: the 4th sample (in round 3) passes and round 3's other 3 are paid too.
    assert [call.n for call in backend.calls] == [1, 2, 4]
    assert outcome.answer == "4" and outcome.units == 7
    assert outcome.metadata["stop_reason"] == StopReason.PASSED
    assert outcome.metadata["rounds"] == 3 and outcome.metadata["samples"] == 7
    assert len(outcome.candidates) == 7
    assert caller.completion_tokens == sum(c.completion.tokens for c in outcome.candidates)


async def test_best_of_k_spends_at_most_its_budget_in_the_planned_calls() -> None:
    backend = in_order("The answer is 1.")
    procedure = SequentialBestOfK(ExactMatch(), config=RoundsConfig(schedule=(1, 2, 4, 8)))
    outcome = await procedure.run(
        Request(prompt="2+2", reference="4"), 10, RetryingCaller(backend, PARAMS)
    )
    assert [call.n for call in backend.calls] == [1, 2, 4, 3]
    assert procedure.plan(10) == [PlannedCall(None, k) for k in (1, 2, 4, 3)]
    assert outcome.units == 10 and outcome.metadata["stop_reason"] == StopReason.MAX_BUDGET
    # The procedure's own cap bounds a larger grant.
    capped = SequentialBestOfK(ExactMatch(), config=RoundsConfig(schedule=(4,), max_budget=6))
    assert capped.plan(100) == [PlannedCall(None, 4), PlannedCall(None, 2)]


async def test_best_of_k_stops_before_a_round_that_would_miss_the_deadline() -> None:
    scope = anyio.CancelScope()
    calls = 0

    async def slow_wrong(prompt: str, n: int, params: GenerationParams) -> list[str]:
        nonlocal calls
        calls += 1
        await anyio.sleep(0.5)
        # The deadline now leaves less time than one more round took: the procedure must stop
        # and keep this round's sample rather than be cut off mid-round.
        scope.deadline = anyio.current_time() + 0.4
        return ["The answer is 1."] * n

    procedure = SequentialBestOfK(ExactMatch(), config=RoundsConfig(schedule=(1,)))
    with scope:
        outcome = await procedure.run(
            Request(prompt="2+2", reference="4"),
            8,
            RetryingCaller(ScriptedBackend(slow_wrong), PARAMS),
        )
    assert calls == 1 and not scope.cancelled_caught
    assert outcome.metadata["stop_reason"] == StopReason.DEADLINE and outcome.units == 1
    assert outcome.answer == "1"


async def test_a_served_request_stops_before_a_round_that_would_miss_its_timeout() -> None:
    # The scheduler times a request with a timer, not a cancel scope: the procedure reads the
    # deadline from its context, so a slow request returns what it found instead of failing.
    async def slow_wrong(prompt: str, n: int, params: GenerationParams) -> list[str]:
        await anyio.sleep(0.3)
        return ["The answer is 1."] * n

    async with Scheduler(
        backend=ScriptedBackend(slow_wrong),
        policy=UniformPolicy(),
        procedure=SequentialBestOfK(ExactMatch(), config=RoundsConfig(schedule=(1,))),
        average_budget=8,
        max_budget=8,
        batching=BatchingConfig(max_batch_size=1, max_wait_s=0.0),
    ) as scheduler:
        result = await scheduler.submit("2+2", reference="4", timeout_s=1.0)
    # Rounds take 0.3 s: the third ends near 0.9 s, a fourth would end past 1.0 s.
    assert result.metadata["stop_reason"] == StopReason.DEADLINE
    assert 1 <= result.usage.units <= 3 and result.answer == "1"


async def test_self_consistency_beta_rule_settles_a_unanimous_vote_after_four_samples() -> None:
    backend = in_order("The answer is 7.")
    procedure = AdaptiveSelfConsistency(BetaRule(confidence=0.95))
    outcome = await procedure.run(Request(prompt="q"), 16, RetryingCaller(backend, PARAMS))
    # P(Beta(v+1, 1) > 1/2) = 1 - 2^-(v+1): 0.9375 at v = 3, 0.969 at v = 4.
    assert [call.n for call in backend.calls] == [1, 1, 1, 1]
    assert outcome.answer == "7" and outcome.units == 4
    assert outcome.metadata["stop_reason"] == StopReason.SETTLED
    assert outcome.metadata["votes"] == {"7": 4}


async def test_self_consistency_esc_rule_stops_on_a_unanimous_window_only() -> None:
    split = in_order("The answer is 1.", "The answer is 2.", "The answer is 2.", "The answer is 2.")
    procedure = AdaptiveSelfConsistency(EscRule(window=2), config=RoundsConfig(max_budget=8))
    outcome = await procedure.run(Request(prompt="q"), 8, RetryingCaller(split, PARAMS))
    assert [call.n for call in split.calls] == [2, 2]
    assert outcome.answer == "2" and outcome.metadata["rounds"] == 2
    never = ScriptedBackend(lambda prompt, n, params: [f"The answer is {i % 2}." for i in range(n)])
    none = await procedure.run(Request(prompt="q"), 8, RetryingCaller(never, PARAMS))
    assert none.units == 8 and none.metadata["stop_reason"] == StopReason.MAX_BUDGET


@settings(deadline=None)  # the first example imports scipy
@given(v1=st.integers(0, 40), v2=st.integers(0, 40), confidence=st.floats(0.5, 0.999))
def test_beta_rule_matches_the_regularised_incomplete_beta_function(
    v1: int, v2: int, confidence: float
) -> None:
    betainc = pytest.importorskip("scipy.special").betainc
    top, second = max(v1, v2), min(v1, v2)
    exact = 1.0 - float(betainc(top + 1, second + 1, 0.5))
    votes = {"a": top, "b": second} if top else {}
    expected = bool(votes) and exact >= confidence
    if votes and math.isclose(exact, confidence, rel_tol=1e-9):
        return  # on the boundary rounding decides
    state = RoundState(cap=16, sizes=(1,) * 16, votes=votes)
    assert BetaRule(confidence=confidence).settled(state, []) is expected


def test_bad_configuration_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="schedule sizes must be >= 1"):
        RoundsConfig(schedule=(1, 0))
    with pytest.raises(ConfigError, match="confidence must be in"):
        BetaRule(confidence=1.5)
    with pytest.raises(ConfigError, match="window must be an int"):
        EscRule(window=0)
    with pytest.raises(ConfigError, match="threshold must be a finite number"):
        SequentialBestOfK(ExactMatch(), threshold=float("nan"))


async def test_scheduler_settles_the_samples_used_and_gives_the_rest_back() -> None:
    seen: list[int] = []

    class Recording(UniformPolicy):
        async def allocate(
            self, requests: Sequence[Request], total_budget: int, bounds: object
        ) -> list[int]:
            budgets = await super().allocate(requests, total_budget, bounds)  # type: ignore[arg-type]
            seen.extend(budgets)
            return budgets

    ledger = InMemoryLedger()
    procedure = SequentialBestOfK(ExactMatch(), config=RoundsConfig(schedule=(1,), max_budget=32))
    async with Scheduler(
        backend=in_order("The answer is 4."),
        policy=Recording(),
        procedure=procedure,
        ledger=ledger,
        config=SchedulerConfig(
            average_budget=4,
            max_budget=32,
            carry_limit=64,
            batching=BatchingConfig(max_batch_size=1, max_wait_s=0.0),
        ),
    ) as scheduler:
        first = await scheduler.submit("2+2", reference="4")
        await scheduler.submit("2+2", reference="4")
    assert first.budget == 1 and first.usage.units == 1
    assert first.metadata["stop_reason"] == "passed" and first.metadata["granted_budget"] == 4
    # The 3 units the first request did not use were carried to the next one.
    assert seen == [4, 7]
    assert (await ledger.snapshot())["default"].settled.units == 2
