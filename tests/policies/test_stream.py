"""The stream allocator and the priors it reads: the pool is exact, prices follow forecasts, and
the prior's strength is learned from outcomes."""

from __future__ import annotations

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
    assert (np.diff(values[0]) <= 1e-12).all() and costs[0, 0] == 1.0
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
