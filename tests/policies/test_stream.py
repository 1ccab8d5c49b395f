"""The stream allocator and the priors it reads: the pool is exact, prices follow forecasts, and
the prior's strength is learned from outcomes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from howhard.errors import ConfigError
from howhard.policies.priors import (
    EstimatePrior,
    FixedPrior,
    OnlinePrior,
    OnlinePriorConfig,
    PriorSource,
    RequestInfo,
)
from howhard.policies.stream import (
    EliminationAllocator,
    FixedPriceAllocator,
    RoundRequest,
    StreamAllocator,
    StreamGate,
)
from howhard.posterior import GRID, forecast, log_lik_counts, normalise, round_sizes


def ask(key: str, value: float, size: int = 1, forced: bool = False) -> RoundRequest:
    return RoundRequest(
        key=key, size=size, forced=forced, values=np.array([value]), costs=np.array([size * 1.0])
    )


def test_the_pool_holds_exactly_the_deposits_and_owed_rounds_go_first() -> None:
    allocator = StreamAllocator(average_budget=1.5, horizon=0, max_wait=0)
    for key in "ab":
        allocator.admit(ask(key, 0.5))
    # 3 units: the owed round of "b" is granted before "a"'s more valuable one, and the rest
    # waits for units it cannot get (max_wait 0: refused with no_units).
    grants = allocator.grant([ask("a", 0.9, size=2), ask("b", 0.1, forced=True), ask("c", 0.8, 2)])
    assert grants.granted == {"b": 1, "a": 2}
    assert grants.refused == {"c": "no_units"}
    assert allocator.pool == 0.0
    allocator.release(2)  # a's round came back unused
    assert allocator.pool == 2.0 and allocator.spent == 1.0


def test_a_round_worth_less_than_the_price_stops_its_request() -> None:
    allocator = StreamAllocator(average_budget=1.0, horizon=0)
    allocator.admit(ask("a", 0.5))
    # Demand of 2 units for 1 in the pool: the price clears at the second round's value.
    grants = allocator.grant([ask("a", 0.5), ask("b", 0.1)])
    assert grants.price == pytest.approx(0.1)
    assert grants.granted == {"a": 1}
    fixed = FixedPriceAllocator(price=0.3).grant([ask("a", 0.5), ask("b", 0.1)])
    assert fixed.granted == {"a": 1} and fixed.refused == {"b": "not_worth"}


def forecast_ask(key: str, values: list[float]) -> RoundRequest:
    return RoundRequest(
        key=key, size=1, forced=False, values=np.array(values), costs=np.ones(len(values))
    )


def test_a_round_below_the_price_is_parked_until_the_stream_drains() -> None:
    allocator = StreamAllocator(average_budget=1.0, horizon=0)
    for key in "ab":
        allocator.admit(ask(key, 0.5))
    # a's three planned rounds (0.5, 0.2, 0.2) clear the 2-unit pool at 0.2: b's 0.05 is below.
    first = allocator.grant([forecast_ask("a", [0.5, 0.2, 0.2]), forecast_ask("b", [0.05])])
    assert first.price == pytest.approx(0.2)
    assert first.granted == {"a": 1} and first.waiting == ["b"] and not first.refused
    # a passed and left: nothing else wants the unit left, so b is worth it now.
    second = allocator.grant([forecast_ask("b", [0.05])])
    assert second.granted == {"b": 1} and allocator.pool == 0.0


def test_a_parked_round_is_refused_when_the_price_cannot_fall_or_patience_runs_out() -> None:
    asks = [forecast_ask("a", [0.5, 0.2, 0.2]), forecast_ask("b", [0.05])]
    impatient = StreamAllocator(average_budget=1.0, horizon=0, patience=0)
    for key in "ab":
        impatient.admit(ask(key, 0.5))
    assert impatient.grant(asks).refused == {"b": "not_worth"}
    patient = StreamAllocator(average_budget=1.0, horizon=0, patience=2)
    for key in "ab":
        patient.admit(ask(key, 0.5))
    patient.pool = 10.0  # a is granted every tick; b stays below the price it sets
    high = [forecast_ask("a", [0.5] * 30), forecast_ask("b", [0.05])]
    assert [patient.grant(high).refused for _ in range(3)] == [{}, {}, {"b": "not_worth"}]
    # Nothing granted and nothing else in flight: the price cannot fall, so no one waits.
    dry = StreamAllocator(average_budget=0.0, horizon=0)
    for key in "ab":
        dry.admit(ask(key, 0.5))
    stuck = dry.grant([forecast_ask("a", [0.3, 0.3]), forecast_ask("b", [0.05])])
    assert stuck.refused == {"b": "not_worth"} and stuck.waiting == ["a"]
    # In a stream the price plans for arrivals and does not fall as requests leave: no parking
    # unless asked for.
    assert StreamAllocator(average_budget=1.0, horizon=4).patience == 0
    assert StreamAllocator(average_budget=1.0, horizon=4, patience=3).patience == 3
    assert StreamAllocator(average_budget=1.0, horizon=0).patience is None
    # The same ask while another request is mid-round waits for it to finish.
    assert dry.grant([forecast_ask("b", [0.05])], [forecast_ask("a", [0.3, 0.3])]).waiting == ["b"]
    # A request that leaves while waiting (cancelled, timed out) leaves no state behind.
    dry.forget("a")
    dry.forget("b")
    assert not dry._waits and not dry._parks


@settings(max_examples=60, deadline=None)
@given(
    budget=st.floats(0.5, 6.0),
    asks=st.lists(
        st.tuples(st.integers(0, 9), st.floats(0.0, 1.0), st.integers(1, 4), st.booleans()),
        min_size=1,
        max_size=40,
    ),
)
def test_spend_never_exceeds_the_average_budget_times_the_admitted(
    budget: float, asks: list[tuple[int, float, int, bool]]
) -> None:
    allocator = StreamAllocator(average_budget=budget, horizon=4)
    admitted: set[int] = set()
    for key, value, size, forced in asks:
        if key not in admitted:
            admitted.add(key)
            allocator.admit(ask(str(key), value))
        allocator.grant([ask(str(key), value, size, forced)])
        assert allocator.pool >= -1e-9
        assert allocator.spent <= budget * len(admitted) + 1e-9


def test_elimination_gives_every_active_query_a_round_while_the_budget_lasts() -> None:
    allocator = EliminationAllocator(average_budget=1.5, seed=0)
    for key in "abcd":
        allocator.admit(ask(key, 1.0))
    first = allocator.grant([ask(k, 1.0) for k in "abcd"])
    assert sorted(first.granted) == list("abcd")
    second = allocator.grant([ask(k, 1.0) for k in "abcd"])
    assert len(second.granted) == 2 and len(second.refused) == 2


def test_forecast_values_fall_with_failures_and_match_the_point_mass_case() -> None:
    prior = FixedPrior().prior(RequestInfo(key="q", z=0.0))
    sizes = round_sizes(0, 0, (1, 2, 4), 16)
    values, costs = forecast(prior[None, :], sizes)
    assert (np.diff(values[0]) <= 1e-12).all() and costs[0, 0] == pytest.approx(1.0)
    after = normalise(prior + log_lik_counts([0], [5])[0])
    later, _ = forecast(after[None, :], (1,))
    assert later[0, 0] < values[0, 0]
    point = np.full(GRID.shape, -np.inf)
    point[100] = 0.0
    exact, _ = forecast(point[None, :], (1, 1))
    assert exact[0] == pytest.approx([GRID[100], GRID[100]])


@pytest.mark.parametrize("informative", [True, False])
def test_the_online_prior_learns_how_far_to_trust_the_probe(informative: bool) -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(-0.5, 2.0, size=300)
    source = OnlinePrior(OnlinePriorConfig(z_mean=-0.5, z_var=4.0))
    start = source.strength()
    for i, zi in enumerate(z):
        info = RequestInfo(key=str(i), z=float(zi))
        lam = 1 / (1 + np.exp(-(zi if informative else rng.normal(-0.5, 2.0))))
        passes = int(rng.binomial(8, lam))
        source.feedback(info, passes, 8 - passes)
    source.tick()
    assert source.version == 1
    if informative:
        assert source.strength() > start
    else:
        assert source.strength() < 0.25 < start


def _stream_of_groups(offsets: dict[str, float], per_group: int = 40) -> OnlinePrior:
    """A stream whose groups' true logits are the probe's plus the group's offset."""
    rng = np.random.default_rng(1)
    source = OnlinePrior(OnlinePriorConfig(z_mean=-0.5, z_var=4.0))
    for i in range(per_group):
        for group, offset in offsets.items():
            z = float(rng.normal(-0.5, 2.0))
            lam = 1 / (1 + np.exp(-(z + offset)))
            passes = int(rng.binomial(8, lam))
            source.feedback(RequestInfo(key=f"{group}{i}", z=z, group=group), passes, 8 - passes)
    source.tick()
    return source


def test_the_online_prior_learns_how_far_groups_shifts_spread() -> None:
    # Groups the probe calibrates alike teach a small spread, so one group's few requests
    # cannot move its shift far; groups off by different amounts teach a wide one.
    start = OnlinePrior().shift_spread()
    alike = _stream_of_groups({g: 0.0 for g in "abcdef"})
    apart = _stream_of_groups({"a": -2.5, "b": 2.5, "c": -1.5, "d": 1.5, "e": 0.0, "f": 2.0})
    assert alike.shift_spread() < 0.3 < start < apart.shift_spread()
    assert max(abs(v) for v in alike.shifts().values()) < 0.3
    shifts = apart.shifts()
    assert shifts["a"] < -1.0 and shifts["b"] > 1.0 and abs(shifts["e"]) < 0.6


def test_pooling_other_groups_strength_evidence_is_bounded_by_pool_requests() -> None:
    stream = _stream_of_groups({g: 0.0 for g in "abc"})
    isolated = OnlinePrior(stream.config.model_copy(update={"pool_requests": 0.0}))
    for key in ("_group_ll", "_group_n", "_evidence"):
        setattr(isolated, key, getattr(stream, key))
    isolated._total_evidence, isolated._total_n = stream._total_evidence, stream._total_n
    new = RequestInfo(key="new", z=0.0, group="unseen")
    # A group with no requests of its own takes all the stream's evidence by default, none at 0.
    assert not np.allclose(stream.prior(new), OnlinePrior(stream.config).prior(new))
    assert np.allclose(isolated.prior(new), OnlinePrior(isolated.config).prior(new))


@pytest.mark.parametrize(
    ("update", "match"),
    [
        ({"shift_sds": (0.5, 0.0)}, "shift_sds"),
        ({"shift_sds": (0.5, float("inf"))}, "shift_sds"),
        ({"shift_sds": ()}, "shift_sds"),
        ({"kappa_weights": (float("nan"), 1.0, 1.0, 1.0, 1.0)}, "kappa_weights"),
        ({"kappa_weights": (-0.1, 1.0, 1.0, 1.0, 1.0)}, "kappa_weights"),
        ({"shift_sd_weights": (0.0, 0.0, 0.0, 0.0, 0.0)}, "shift_sd_weights"),
        ({"shift_sd_weights": (1.0, float("inf"), 1.0, 1.0, 1.0)}, "shift_sd_weights"),
    ],
)
def test_bad_spreads_or_starting_weights_are_refused(update: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OnlinePriorConfig(**update)


def test_starting_weights_must_match_their_grid() -> None:
    with pytest.raises(ConfigError, match="shift_sd_weights has 2 entries for 5"):
        OnlinePrior(OnlinePriorConfig(shift_sd_weights=(0.5, 0.5)))
    with pytest.raises(ConfigError, match="kappa_weights has 1 entries for 5"):
        OnlinePrior(OnlinePriorConfig(kappa_weights=(1.0,)))


def test_a_finished_request_leaves_no_state_in_the_online_prior() -> None:
    # A served stream runs for months: only the requests in flight may hold per-request state,
    # while every finished request's evidence keeps counting.
    source = OnlinePrior()
    for i in range(50):
        info = RequestInfo(key=str(i), z=-1.0)
        source.update(info, 0, 2)
        source.prior(info)
        source.feedback(info, 0, 4)
    source.tick()
    assert source._contrib == {} and source._weights == {}
    assert source.strength() != OnlinePrior().strength()


def test_a_success_estimate_feeds_the_allocator_through_the_protocol() -> None:
    class Estimate:
        def __init__(self) -> None:
            self.seen: list[tuple[int, int]] = []

        def estimate(self, info: RequestInfo) -> tuple[float, float]:
            return (0.2, 4.0) if info.group == "hard" else (0.8, 4.0)

        def observe(self, info: RequestInfo, passes: int, fails: int) -> None:
            self.seen.append((passes, fails))

    estimate = Estimate()
    source = EstimatePrior(estimate)
    assert isinstance(source, PriorSource)
    hard = np.exp(source.prior(RequestInfo(key="a", z=0.0, group="hard")))
    easy = np.exp(source.prior(RequestInfo(key="b", z=0.0, group="easy")))
    assert hard.sum() == pytest.approx(1.0) and (hard * GRID).sum() < (easy * GRID).sum()
    source.feedback(RequestInfo(key="a", z=0.0), 1, 2)
    source.tick()
    assert estimate.seen == [(1, 2)] and source.version == 1

    class Broken:
        def estimate(self, info: RequestInfo) -> tuple[float, float]:
            return (1.5, 1.0)

    with pytest.raises(ConfigError, match="return a mean in"):
        EstimatePrior(Broken()).prior(RequestInfo(key="a", z=0.0))


async def _served(
    questions: dict[str, bool], average: float, cap: int = 8
) -> tuple[list[object], StreamAllocator, StreamGate]:
    """Submit every question at once through a scheduler whose procedure asks a StreamGate."""
    import anyio

    from howhard import BatchingConfig, RoundsConfig, Scheduler
    from howhard.backends import ScriptedBackend
    from howhard.policies import UniformPolicy
    from howhard.procedures import SequentialBestOfK
    from howhard.scoring import ExactMatch

    backend = ScriptedBackend(
        lambda prompt, n, params: ["The answer is 4." if questions[prompt] else "No idea."] * n
    )
    allocator = StreamAllocator(average_budget=average, horizon=0)
    gate = StreamGate(allocator, FixedPrior(flat=True), logit=lambda request: 0.0)
    procedure = SequentialBestOfK(
        ExactMatch(), config=RoundsConfig(schedule=(1,), max_budget=cap), gate=gate
    )
    results: list[object] = []
    async with Scheduler(
        backend=backend,
        policy=UniformPolicy(),
        procedure=procedure,
        average_budget=cap,
        max_budget=cap,
        batching=BatchingConfig(max_batch_size=64, max_wait_s=0.01),
    ) as scheduler:

        async def one(prompt: str) -> None:
            results.append(await scheduler.submit(prompt, reference="4"))

        async with anyio.create_task_group() as tg:
            for prompt in questions:
                tg.start_soon(one, prompt)
    return results, allocator, gate


@pytest.mark.anyio
async def test_a_served_stream_spends_exactly_its_budget_where_it_is_needed() -> None:
    questions = {f"easy {i}": True for i in range(6)} | {f"hard {i}": False for i in range(4)}
    results, allocator, gate = await _served(questions, average=2.0)
    stats = gate.stats()
    assert stats["admitted"] == 10 and stats["in_flight"] == 0
    assert stats["pool"] + stats["spent"] == pytest.approx(20.0)
    assert len(results) == 10
    used = {r.request_id: r.usage.units for r in results}  # type: ignore[attr-defined]
    assert sum(used.values()) <= 2.0 * 10
    assert allocator.spent == sum(used.values()) and allocator.pool >= 0
    assert not allocator._waits and not allocator._parks  # nothing kept for finished requests
    easy = [r for r in results if r.metadata["stop_reason"] == "passed"]  # type: ignore[attr-defined]
    assert len(easy) == 6 and all(r.usage.units == 1 for r in easy)  # type: ignore[attr-defined]
    # The easy questions' unused units went to the hard ones, which got more than the average.
    hard = [r for r in results if r not in easy]
    assert {r.metadata["stop_reason"] for r in hard} <= {"not_worth", "no_units", "max_budget"}  # type: ignore[attr-defined]
    assert sum(r.usage.units for r in hard) / len(hard) > 2.0  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_a_cancelled_round_gives_its_units_back() -> None:
    import anyio

    from howhard import RoundsConfig
    from howhard.backends import ScriptedBackend
    from howhard.policies import StreamGate
    from howhard.procedures import RetryingCaller, SequentialBestOfK
    from howhard.scoring import ExactMatch
    from howhard.types import GenerationParams, Request

    started = anyio.Event()

    async def blocked(prompt: str, n: int, params: GenerationParams) -> list[str]:
        started.set()
        await anyio.sleep_forever()
        return []

    allocator = StreamAllocator(average_budget=4.0, horizon=0)
    gate = StreamGate(allocator, FixedPrior(flat=True), logit=lambda request: 0.0, tick_s=0.0)
    procedure = SequentialBestOfK(
        ExactMatch(), config=RoundsConfig(schedule=(2,), max_budget=8), gate=gate
    )
    caller = RetryingCaller(ScriptedBackend(blocked), GenerationParams(max_tokens=4))
    async with anyio.create_task_group() as tg:
        tg.start_soon(procedure.run, Request(prompt="q", reference="4"), 8, caller)
        await started.wait()
        assert allocator.pool == 2.0  # the round's 2 units are out
        tg.cancel_scope.cancel()
    assert allocator.pool == 4.0 and allocator.spent == 0.0


def _gated(answer: object, allocator: StreamAllocator) -> Any:
    """A scheduler whose sequential best-of-k asks a StreamGate; the prior calls the prompt
    "hopeless?" hopeless (probe logit -6) and every other prompt likely (+2)."""
    from howhard import BatchingConfig, RoundsConfig, Scheduler
    from howhard.backends import ScriptedBackend
    from howhard.policies import UniformPolicy
    from howhard.procedures import SequentialBestOfK
    from howhard.scoring import ExactMatch

    gate = StreamGate(
        allocator, FixedPrior(), logit=lambda r: -6.0 if r.prompt == "hopeless?" else 2.0
    )
    return Scheduler(
        backend=ScriptedBackend(answer),  # type: ignore[arg-type]
        policy=UniformPolicy(),
        procedure=SequentialBestOfK(
            ExactMatch(), config=RoundsConfig(schedule=(1,), max_budget=8), gate=gate
        ),
        average_budget=8,
        max_budget=8,
        batching=BatchingConfig(max_batch_size=64, max_wait_s=0.01),
    )


async def _late_solver(patience: int | None) -> dict[str, Any]:
    """Four likely questions that pass on their second sample and one the prior calls hopeless
    that passes on its second too; 2 units each, so the hopeless one can only run once the
    others leave."""
    import anyio

    from howhard.types import GenerationParams

    calls: dict[str, int] = {}

    def answer(prompt: str, n: int, params: GenerationParams) -> list[str]:
        calls[prompt] = calls.get(prompt, 0) + n
        return ["The answer is 4." if calls[prompt] >= 2 else "No idea."] * n

    allocator = StreamAllocator(average_budget=2.0, horizon=0, patience=patience)
    results: dict[str, Any] = {}
    async with _gated(answer, allocator) as scheduler:

        async def one(prompt: str) -> None:
            results[prompt] = await scheduler.submit(prompt, reference="4")

        async with anyio.create_task_group() as tg:
            for prompt in ("a?", "b?", "c?", "d?", "hopeless?"):
                tg.start_soon(one, prompt)
    assert allocator.pool >= 0 and allocator.spent <= 2.0 * 5
    return results


@pytest.mark.anyio
async def test_a_request_the_prior_calls_hopeless_runs_on_the_units_the_others_leave() -> None:
    parked = await _late_solver(patience=None)
    assert {r.metadata["stop_reason"] for r in parked.values()} == {"passed"}
    assert parked["hopeless?"].usage.units == 2
    # A final refusal (the allocator before parking) stops it after its owed sample.
    final = await _late_solver(patience=0)
    assert final["hopeless?"].metadata["stop_reason"] == "not_worth"
    assert final["hopeless?"].usage.units == 1


@pytest.mark.anyio
async def test_a_parked_request_stops_at_its_deadline_and_keeps_what_it_found() -> None:
    import anyio

    from howhard.types import GenerationParams

    release = anyio.Event()
    calls: dict[str, int] = {}

    async def answer(prompt: str, n: int, params: GenerationParams) -> list[str]:
        calls[prompt] = calls.get(prompt, 0) + n
        if prompt == "likely?" and calls[prompt] > 1:
            await release.wait()  # its second round is in flight while the other is parked
            return ["The answer is 4."] * n
        return ["No idea."] * n

    allocator = StreamAllocator(average_budget=2.0, horizon=0)
    async with (
        _gated(answer, allocator) as scheduler,
        anyio.create_task_group() as tg,
    ):
        likely: list[object] = []

        async def first() -> None:
            likely.append(await scheduler.submit("likely?", reference="4"))

        tg.start_soon(first)
        hopeless = await scheduler.submit("hopeless?", reference="4", timeout_s=0.5)
        release.set()
    # Parked below the price while the other round ran, it stopped before its timeout with the
    # samples it had drawn (not a RequestTimeout, not a final refusal).
    assert hopeless.metadata["stop_reason"] == "deadline"
    assert hopeless.usage.units == hopeless.metadata["samples"] >= 1
    assert likely[0].metadata["stop_reason"] == "passed"  # type: ignore[attr-defined]
    assert allocator.pool + allocator.spent == pytest.approx(4.0)


@pytest.mark.anyio
async def test_a_gate_refuses_a_logit_that_is_not_a_number() -> None:
    from howhard.errors import PolicyError
    from howhard.types import Request, RoundView

    allocator = StreamAllocator(average_budget=2.0, horizon=0)
    gate = StreamGate(allocator, FixedPrior(), logit=lambda request: float("nan"))
    view = RoundView(used=0, rounds=0, passes=0, fails=0, sizes=(1, 1))
    with pytest.raises(PolicyError, match="finite probe logit"):
        await gate.grant(Request(prompt="q"), view)
    assert allocator.admitted == 0 and gate.stats()["in_flight"] == 0
