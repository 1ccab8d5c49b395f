"""OnlineAdaptivePolicy: learns from feedback through the scheduler, prices small batches,
falls back to uniform when the probe misleads, and answers every request by default."""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import anyio
import numpy as np
import pytest

from howhard import BatchingConfig, Scheduler
from howhard.backends import ScriptedBackend
from howhard.errors import ConfigError
from howhard.marginals import marginals_from_success_prob
from howhard.policies import (
    AdaptiveConfig,
    CalibrationSafeguard,
    FeatureClusters,
    OnlineAdaptivePolicy,
    Policy,
    StreamPrice,
    allocate,
)
from howhard.probes import BetaMarginalsMap, RecordedProbe
from howhard.procedures import BestOfK, SelfConsistency
from howhard.scoring import ExactMatch
from howhard.testing import PolicyContract
from howhard.types import BudgetBounds, Feedback, Request

pytestmark = pytest.mark.anyio


class PromptHashProbe:
    """Any prompt's logit 0 and a feature row drawn from its hash (4 template directions)."""

    async def read(self, requests: Sequence[Request]) -> tuple[np.ndarray, np.ndarray]:
        rows = []
        for r in requests:
            template = zlib.crc32(r.prompt.split()[0].encode()) % 4
            rows.append(np.eye(4)[template] + 0.01 * (zlib.crc32(r.prompt.encode()) % 7))
        return np.zeros(len(requests)), np.array(rows)


class TestOnlineAdaptivePolicy(PolicyContract):
    def make_policy(self) -> Policy:
        return OnlineAdaptivePolicy(PromptHashProbe(), BetaMarginalsMap())


class TestOnlineAdaptiveWithAbstention(PolicyContract):
    def make_policy(self) -> Policy:
        return OnlineAdaptivePolicy(
            PromptHashProbe(), BetaMarginalsMap(), AdaptiveConfig(min_budget=0, price=False)
        )


def requests(n: int, template: str = "easy") -> list[Request]:
    return [Request(prompt=f"{template} question {i}", id=f"{template}-{i}") for i in range(n)]


async def test_every_request_gets_a_sample_by_default() -> None:
    policy = OnlineAdaptivePolicy(PromptHashProbe(), BetaMarginalsMap(a0=-4.0, beta0=0.0))
    bounds = BudgetBounds(average_budget=1.0, max_budget=8)
    budgets = await policy.allocate(requests(16), 16, bounds)
    assert budgets == [1] * 16


async def test_feedback_through_the_scheduler_moves_a_template_apart() -> None:
    # "easy" prompts are always answered right, "hard" ones never; the probe says nothing.
    def handler(prompt: str, n: int, params: object) -> list[str]:
        return ["The answer is 1." if prompt.startswith("easy") else "The answer is 2."] * n

    policy = OnlineAdaptivePolicy(
        PromptHashProbe(), BetaMarginalsMap(), AdaptiveConfig(auto_groups=False)
    )
    async with Scheduler(
        backend=ScriptedBackend(handler),
        policy=policy,
        procedure=BestOfK(ExactMatch()),
        average_budget=4,
        max_budget=8,
        batching=BatchingConfig(max_batch_size=8, max_wait_s=0.001),
    ) as scheduler:
        for round_ in range(4):
            async with anyio.create_task_group() as tg:
                for template in ("easy", "hard"):
                    for i in range(4):
                        request = Request(
                            prompt=f"{template} {round_} {i}",
                            reference="1",
                            metadata={"group": template},
                        )
                        tg.start_soon(scheduler.submit, request)
    stats = policy.stats()
    assert stats["observations"] == 32 and stats["groups"] == 2
    rows = policy.posterior.predict(np.zeros(2), ["easy", "hard"])
    assert rows[0, 0] > 0.8 and rows[1, 0] < 0.1


async def test_without_a_verdict_the_policy_learns_nothing() -> None:
    policy = OnlineAdaptivePolicy(PromptHashProbe(), BetaMarginalsMap())
    async with Scheduler(
        backend=ScriptedBackend(),
        policy=policy,
        procedure=SelfConsistency(),
        average_budget=2,
        batching=BatchingConfig(max_batch_size=4, max_wait_s=0.001),
    ) as scheduler:
        results = [await scheduler.submit(r) for r in requests(3)]
    assert len(results) == 3 and all(r.budget >= 1 for r in results)
    assert policy.stats()["observations"] == 0


async def test_a_failing_observe_never_fails_a_request() -> None:
    class Broken(OnlineAdaptivePolicy):
        def observe(self, feedback: Feedback) -> None:
            raise RuntimeError("learning bug")

    async with Scheduler(
        backend=ScriptedBackend(),
        policy=Broken(PromptHashProbe(), BetaMarginalsMap()),
        procedure=BestOfK(ExactMatch()),
        average_budget=2,
        batching=BatchingConfig(max_batch_size=4, max_wait_s=0.001),
    ) as scheduler:
        result = await scheduler.submit("easy one", reference="3")
    assert result.budget >= 1 and result.answer is not None


def test_stream_price_lets_single_request_batches_adapt() -> None:
    # Half the requests are hopeless (true marginals 0). One request per batch, B = 4.
    rng = np.random.default_rng(1)
    p = np.where(rng.random(2000) < 0.5, 0.0, rng.uniform(0.05, 0.9, 2000))
    marginals = marginals_from_success_prob(p, 16)
    price = StreamPrice()
    carry, spent, quality = 0.0, [], 0.0
    for i in range(2000):
        total = math.floor(4 + carry + 1e-9)
        b = int(price.allocate(marginals[i : i + 1], total, average_budget=4, min_budget=1)[0])
        carry = min(4 + carry - b, 4 * 32)  # the scheduler's carry rule
        spent.append(b)
        quality += 1 - (1 - p[i]) ** b
    assert 3.8 <= np.mean(spent) <= 4.0
    assert np.mean(np.array(spent)[p == 0] == 1) > 0.95  # hopeless ones get min_budget
    uniform = np.sum(1 - (1 - p) ** 4)
    assert quality > uniform * 1.05


def test_safeguard_goes_uniform_for_an_anti_correlated_model() -> None:
    rng = np.random.default_rng(2)
    p = rng.uniform(0.05, 0.95, 600)
    inverted = CalibrationSafeguard(min_obs=64)
    inverted.record(p, rng.random(600) < 1 - p)
    assert inverted.shrink == 1.0
    calibrated = CalibrationSafeguard(min_obs=64)
    calibrated.record(p, rng.random(600) < p)
    assert calibrated.shrink < 0.1
    rows = marginals_from_success_prob(rng.uniform(0, 1, 8), 8)
    shrunk = inverted.apply(rows)
    assert np.allclose(shrunk, shrunk[0])  # ρ = 1: every row is the population row
    assert set(allocate(shrunk, 32, min_budget=1).tolist()) == {4}


def test_safeguard_waits_for_min_obs() -> None:
    guard = CalibrationSafeguard(min_obs=64, window=512)
    guard.record(np.full(63, 0.9), np.zeros(63))
    assert guard.shrink == 0.0
    guard.record([0.9], [0.0])
    assert guard.shrink == 1.0


def test_feature_clusters_split_templates_and_refuse_bad_rows() -> None:
    clusters = FeatureClusters(threshold=0.9)
    rows = np.array([[1, 0.05, 0], [1, 0, 0.05], [0, 1, 0], [0.02, 1, 0]], dtype=float)
    assert clusters.assign(rows).tolist() == [0, 0, 1, 1]
    assert clusters.clusters == 2
    with pytest.raises(ConfigError, match="columns"):
        clusters.assign(np.ones((1, 5)))


async def test_an_uninformative_probe_with_feedback_stays_at_uniform_or_better() -> None:
    # The probe's logits are noise; templates differ. After feedback the policy must not lose
    # to uniform (it learns β ≈ 0 and each template's offset).
    rng = np.random.default_rng(5)
    n = 1200
    template = rng.integers(0, 6, n)
    lam = np.array([0.0, 0.05, 0.2, 0.4, 0.7, 0.9])[template]
    prompts = [f"t{t} q{i}" for i, t in enumerate(template)]
    features = np.eye(6)[template] + 0.01 * rng.normal(size=(n, 6))
    probe = RecordedProbe.from_arrays(prompts, rng.normal(size=n), features)
    policy = OnlineAdaptivePolicy(probe, BetaMarginalsMap(a0=-1.0, beta0=0.5))
    bounds = BudgetBounds(average_budget=4.0, max_budget=16)
    carry, adaptive = 0.0, []
    for start in range(0, n, 32):
        batch = [Request(prompt=prompts[i], id=str(i)) for i in range(start, min(start + 32, n))]
        total = math.floor(4 * len(batch) + carry + 1e-9)
        budgets = await policy.allocate(batch, total, bounds)
        carry = min(4 * len(batch) + carry - sum(budgets), 4 * 32)
        for request, b in zip(batch, budgets, strict=True):
            i = int(request.id)
            k = int(rng.binomial(b, lam[i]))
            policy.observe(Feedback(request=request, budget=b, samples=b, successes=k))
            adaptive.append(1 - (1 - lam[i]) ** b)
    later = slice(500, n)
    uniform = 1 - (1 - lam[later]) ** 4
    assert np.mean(adaptive[later]) >= np.mean(uniform) - 0.005
    assert policy.stats()["beta"] < 0.3
