"""Built-in policies: uniform, adaptive (online/offline allocators), routing, random routing."""

from collections.abc import Sequence

import anyio
import numpy as np
import numpy.typing as npt
import pytest

from howhard import BatchingConfig, Price, Scheduler
from howhard.backends import ScriptedBackend
from howhard.errors import ConfigError, PolicyError
from howhard.policies import (
    AdaptivePolicy,
    OfflineAllocator,
    OnlineAllocator,
    Policy,
    RandomRoutingPolicy,
    RoutingPolicy,
    UniformPolicy,
    check_budgets,
    marginals_from_success_prob,
)
from howhard.policies.builtin import trim_to_total
from howhard.procedures import Routing
from howhard.types import BudgetBounds, Request

pytestmark = pytest.mark.anyio


def batch(n: int) -> list[Request]:
    return [Request(prompt=f"q{i}") for i in range(n)]


class FixedPredictor:
    """Returns preset marginals (what a trained probe would predict)."""

    def __init__(self, marginals: npt.ArrayLike) -> None:
        self.marginals = np.asarray(marginals, dtype=np.float64)
        self.max_budget = self.marginals.shape[1]

    async def predict(
        self, requests: Sequence[Request], max_budget: int
    ) -> npt.NDArray[np.float64]:
        return self.marginals[: len(requests)]


class GreedyOnline:
    """A stand-in with the online allocator's contract: largest marginals first."""

    def allocate(
        self, marginals: npt.NDArray[np.float64], total_budget: int | None = None
    ) -> npt.NDArray[np.int64]:
        assert total_budget is not None
        order = np.argsort(-marginals, axis=None, kind="stable")[:total_budget]
        keep = marginals.ravel()[order] > 0
        rows = np.unravel_index(order[keep], marginals.shape)[0]
        return np.bincount(rows, minlength=marginals.shape[0]).astype(np.int64)


class TableOffline:
    """A stand-in with the offline allocator's contract: budget by score bin."""

    def budgets(self, scores: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        return np.where(scores > 0.5, 1, 4).astype(np.int64)


def test_builtin_policies_satisfy_the_protocol() -> None:
    predictor = FixedPredictor([[0.5]])
    for policy in (
        UniformPolicy(),
        AdaptivePolicy(predictor, GreedyOnline()),
        RoutingPolicy(predictor),
        RandomRoutingPolicy(),
    ):
        assert isinstance(policy, Policy)


async def test_uniform_splits_evenly_with_remainder_first_and_caps() -> None:
    assert await UniformPolicy().allocate(batch(4), 10) == [3, 3, 2, 2]
    assert await UniformPolicy(max_budget=2).allocate(batch(2), 10) == [2, 2]
    assert await UniformPolicy().allocate([], 10) == []


async def test_adaptive_online_spends_where_marginals_are_largest() -> None:
    marginals = [[0.9, 0.5, 0.1], [0.0, 0.0, 0.0], [0.6, 0.4, 0.3]]
    policy = AdaptivePolicy(FixedPredictor(marginals), GreedyOnline())
    assert await policy.allocate(batch(3), 4) == [2, 0, 2]


async def test_adaptive_offline_uses_the_table_and_trims_to_the_total() -> None:
    marginals = [[0.9, 0.05, 0.0, 0.0], [0.2, 0.16, 0.13, 0.1], [0.3, 0.2, 0.15, 0.1]]
    policy = AdaptivePolicy(FixedPredictor(marginals), TableOffline())
    assert await policy.allocate(batch(3), 100) == [1, 4, 4]
    trimmed = await policy.allocate(batch(3), 6)
    assert sum(trimmed) == 6
    assert trimmed == [1, 2, 3]  # drops the lowest-value units (0.1, 0.1, 0.13) first


def test_trim_to_total_keeps_budgets_that_fit() -> None:
    marginals = np.array([[0.5, 0.4]])
    assert trim_to_total(np.array([2]), marginals, 5) == [2]
    assert trim_to_total(np.array([2]), marginals, 0) == [0]


async def test_adaptive_rejects_bad_predictions() -> None:
    policy = AdaptivePolicy(FixedPredictor([[np.nan, 0.1]]), GreedyOnline())
    with pytest.raises(PolicyError, match="NaN or infinite"):
        await policy.allocate(batch(1), 1)
    wrong_shape = AdaptivePolicy(FixedPredictor([[0.1, 0.1]]), GreedyOnline())
    with pytest.raises(PolicyError, match=r"shape \(1, 2\); expected \(2, max_budget\)"):
        await wrong_shape.allocate(batch(2), 1)
    with pytest.raises(ConfigError, match="allocator must have"):
        AdaptivePolicy(FixedPredictor([[0.1]]), object())  # type: ignore[arg-type]


class FractionalOnline:
    def allocate(
        self, marginals: npt.NDArray[np.float64], total_budget: int | None = None
    ) -> npt.NDArray[np.int64]:
        return np.full(len(marginals), 1.7)  # type: ignore[return-value]  # the bug under test


class FractionalOffline:
    def budgets(self, scores: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        return np.full(len(scores), 1.7)  # type: ignore[return-value]  # the bug under test


@pytest.mark.parametrize("allocator", [FractionalOnline(), FractionalOffline()])
async def test_adaptive_rejects_fractional_budgets_instead_of_truncating_them(
    allocator: object,
) -> None:
    policy = AdaptivePolicy(FixedPredictor([[0.5, 0.2]] * 2), allocator)  # type: ignore[arg-type]
    with pytest.raises(
        PolicyError, match=r"Fractional\w+ returned non-integer budgets \[1.7, 1.7\]"
    ):
        await policy.allocate(batch(2), 10)


async def test_routing_sends_the_most_likely_winners_to_the_strong_model() -> None:
    predictor = FixedPredictor([[0.2], [0.9], [0.5], [0.9]])
    assert await RoutingPolicy(predictor).allocate(batch(4), 2) == [0, 1, 0, 1]
    assert await RoutingPolicy(predictor, strong_fraction=0.25).allocate(batch(4), 4) == [
        0,
        1,
        0,
        0,
    ]
    with pytest.raises(ConfigError, match="strong_fraction must be in"):
        RoutingPolicy(predictor, strong_fraction=1.5)


async def test_random_routing_is_seeded_and_respects_the_budget() -> None:
    first = await RandomRoutingPolicy(seed=3).allocate(batch(10), 4)
    assert first == await RandomRoutingPolicy(seed=3).allocate(batch(10), 4)
    assert sum(first) == 4 and set(first) <= {0, 1}


def test_check_budgets_accepts_numpy_integers_and_names_problems() -> None:
    assert check_budgets(np.array([1, 2]), n=2, total_budget=3) == [1, 2]
    with pytest.raises(PolicyError, match="1-D integer array"):
        check_budgets(np.array([1.0, 2.0]), n=2, total_budget=3)
    with pytest.raises(PolicyError, match="budget\\[0\\] = True"):
        check_budgets([True], n=1, total_budget=3)


class LambdaPredictor:
    """Predicts from the request's metadata['p'] (a known single-sample success probability)."""

    async def predict(
        self, requests: Sequence[Request], max_budget: int
    ) -> npt.NDArray[np.float64]:
        p = np.array([float(r.metadata["p"]) for r in requests])
        return marginals_from_success_prob(p, max_budget)


async def test_adaptive_policy_with_the_online_allocator_end_to_end() -> None:
    policy = AdaptivePolicy(LambdaPredictor(), OnlineAllocator(average_budget=2, max_budget=8))
    results = {}
    async with Scheduler(
        backend=ScriptedBackend(),
        policy=policy,
        average_budget=2,
        max_budget=8,
        batching=BatchingConfig(max_batch_size=4, max_wait_s=30.0),
    ) as scheduler:

        async def submit(name: str, p: float) -> None:
            results[name] = await scheduler.submit(name, metadata={"p": p})

        async with anyio.create_task_group() as tg:
            for name, p in [("impossible", 0.0), ("easy", 0.95), ("hard", 0.3), ("medium", 0.5)]:
                tg.start_soon(submit, name, p)
    budgets = {name: r.budget for name, r in results.items()}
    assert budgets["impossible"] == 0 and results["impossible"].abstained
    assert budgets["hard"] >= budgets["medium"] >= budgets["easy"] >= 1
    assert sum(budgets.values()) == 8


async def test_adaptive_policy_with_a_fitted_offline_allocator() -> None:
    held_out = np.linspace(0.05, 0.95, 40)
    offline = OfflineAllocator.fit(
        held_out, marginals_from_success_prob(held_out, 8), average_budget=2, n_bins=4
    )
    policy = AdaptivePolicy(LambdaPredictor(), offline)
    requests = [Request(prompt=f"q{i}", metadata={"p": p}) for i, p in enumerate([0.1, 0.9])]
    budgets = await policy.allocate(requests, total_budget=100)
    assert budgets == [int(b) for b in offline.budgets(np.array([0.1, 0.9]))]
    assert sum(await policy.allocate(requests, total_budget=1)) <= 1


async def test_adaptive_policy_smooths_wobbly_predictions_for_the_exact_allocator() -> None:
    wobbly = FixedPredictor([[0.5, 0.6, 0.1], [0.4, 0.3, 0.3]])
    policy = AdaptivePolicy(wobbly, OnlineAllocator(average_budget=1.5, max_budget=3))
    assert await policy.allocate(batch(2), 3) == [2, 1]  # row 0 read as [0.5, 0.5, 0.1]
    strict = AdaptivePolicy(
        wobbly, OnlineAllocator(average_budget=1.5, max_budget=3), monotone=False
    )
    with pytest.raises(ConfigError, match="increas"):
        await strict.allocate(batch(2), 3)


async def test_routing_policy_and_procedure_end_to_end_with_priced_models() -> None:
    weak = ScriptedBackend(lambda prompt, n, params: ["The answer is 1."] * n, model="weak")
    strong = ScriptedBackend(lambda prompt, n, params: ["The answer is 2."] * n, model="strong")
    prices = {"weak": Price(output_per_mtok=1e6), "strong": Price(output_per_mtok=1e7)}
    predictor = FixedPredictor([[0.9], [0.1], [0.8], [0.2]])
    results = {}
    async with Scheduler(
        backend=weak,
        policy=RoutingPolicy(predictor),
        procedure=Routing(weak, strong),
        average_budget=0.5,
        max_budget=1,
        prices=prices,
        batching=BatchingConfig(max_batch_size=4, max_wait_s=30.0),
    ) as scheduler:

        async def submit(i: int) -> None:
            results[i] = await scheduler.submit(f"q{i}")

        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(submit, i)
    routes = [results[i].metadata["route"] for i in range(4)]
    assert routes == ["strong", "weak", "strong", "weak"]  # the two likeliest to gain
    for result in results.values():
        strong_route = result.metadata["route"] == "strong"
        assert result.answer == ("2" if strong_route else "1")
        assert result.usage.units == (1 if strong_route else 0)
        assert result.usage.cost == pytest.approx(4 * (10.0 if strong_route else 1.0))


async def test_the_scheduler_hands_its_one_set_of_bounds_to_the_policy() -> None:
    seen: list[BudgetBounds] = []

    class Observing(UniformPolicy):
        async def allocate(
            self, requests: Sequence[Request], total_budget: int, bounds: BudgetBounds
        ) -> list[int]:
            seen.append(bounds)
            return await super().allocate(requests, total_budget, bounds)

    async with Scheduler(
        backend=ScriptedBackend(),
        policy=Observing(),
        average_budget=3,
        max_budget=5,
        min_budget=1,
        batching=BatchingConfig(max_wait_s=0.0),
    ) as scheduler:
        await scheduler.submit("q")
    assert seen == [BudgetBounds(average_budget=3, max_budget=5, min_budget=1)]


async def test_adaptive_policy_predicts_the_bounds_width_with_no_copies_of_its_own() -> None:
    policy = AdaptivePolicy(LambdaPredictor(), OnlineAllocator())
    requests = [Request(prompt=f"q{i}", metadata={"p": p}) for i, p in enumerate([0.5, 0.05])]
    bounds = BudgetBounds(average_budget=3, max_budget=4, min_budget=1)
    budgets = await policy.allocate(requests, 6, bounds)
    assert sum(budgets) <= 6 and all(1 <= b <= 4 for b in budgets)
    assert budgets == [4, 2]  # exact optimum of the geometric rows, floor of 1 each


async def test_policies_and_predictors_of_the_older_signature_still_run_with_a_warning() -> None:
    class TwoArgumentPolicy:
        async def allocate(self, requests: Sequence[Request], total_budget: int) -> list[int]:
            return [1] * len(requests)

    class OneArgumentPredictor:
        max_budget = 2

        async def predict(self, requests: Sequence[Request]) -> npt.NDArray[np.float64]:
            return np.tile([0.5, 0.1], (len(requests), 1))

    with pytest.warns(DeprecationWarning, match=r"allocate\(requests, total_budget, bounds\)"):
        scheduler = Scheduler(
            backend=ScriptedBackend(), policy=TwoArgumentPolicy(), average_budget=1
        )
    async with scheduler:
        assert (await scheduler.submit("q")).budget == 1
    policy = AdaptivePolicy(OneArgumentPredictor(), OnlineAllocator())
    with pytest.warns(DeprecationWarning, match=r"predict\(requests, max_budget\)"):
        budgets = await policy.allocate(batch(2), 2, BudgetBounds(average_budget=1, max_budget=2))
    assert budgets == [1, 1]
