"""The policy conformance suite: what every ``Policy`` must do, runnable against any policy.

Subclass :class:`PolicyContract` in a test module and say how to build your policy::

    from howhard.testing import PolicyContract

    class TestMyPolicy(PolicyContract):
        def make_policy(self):
            return MyPolicy()

The suite hands the policy batches under several :class:`~howhard.types.BudgetBounds` and
checks every answer the way the scheduler does (one integer per request, within the bounds,
summing to at most the batch's total), then serves a few requests through a real
``Scheduler`` with the scripted backend. Override ``bounds`` for a policy meant for a narrower
range (a router serves ``max_budget=1``) and ``make_requests`` if it reads request metadata
(the default requests carry ``metadata["marginals"]``, a single-sample success probability, as
``OraclePredictor`` reads it). Needs pytest and anyio's pytest plugin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import anyio
import pytest

from howhard.backends.scripted import ScriptedBackend
from howhard.config import BatchingConfig
from howhard.policies.base import Policy, check_budgets
from howhard.scheduler import Scheduler
from howhard.types import BudgetBounds, Request

__all__ = ["PolicyContract"]


class PolicyContract:
    """The behaviour every :class:`howhard.policies.Policy` must show; see the module doc."""

    pytestmark = pytest.mark.anyio

    bounds: ClassVar[Sequence[BudgetBounds]] = (
        BudgetBounds(average_budget=2.0, max_budget=4),
        BudgetBounds(average_budget=1.5, max_budget=3, min_budget=1),
        BudgetBounds(average_budget=0.5, max_budget=1),
    )
    """The bounds the policy is checked under (override for a policy with a narrower range)."""
    batch_sizes: ClassVar[Sequence[int]] = (1, 3, 8)

    def make_policy(self) -> Policy:
        """A new policy (override this)."""
        raise NotImplementedError("subclass PolicyContract and implement make_policy")

    def make_requests(self, n: int) -> list[Request]:
        """A batch of ``n`` requests, of mixed prompt lengths and predicted difficulty."""
        return [
            Request(
                prompt="question " + "word " * (i % 5) + str(i),
                id=f"q{i}",
                metadata={"marginals": ((i * 37) % 100) / 100},
            )
            for i in range(n)
        ]

    def test_it_is_a_policy(self) -> None:
        assert isinstance(self.make_policy(), Policy)

    async def test_budgets_respect_the_bounds_and_the_batch_total(self) -> None:
        policy = self.make_policy()
        for bounds in self.bounds:
            for n in self.batch_sizes:
                fair = math.floor(bounds.average_budget * n + 1e-9)
                # The scheduler's totals: the average's share, plus a carry, never below the floor.
                for total in sorted({max(fair, bounds.min_budget * n), fair + 2}):
                    requests = self.make_requests(n)
                    budgets = await policy.allocate(requests, total, bounds)
                    check_budgets(
                        budgets,
                        n=n,
                        total_budget=total,
                        min_budget=bounds.min_budget,
                        max_budget=bounds.max_budget,
                        policy=policy,
                    )

    async def test_an_empty_batch_gets_no_budgets(self) -> None:
        budgets = await self.make_policy().allocate([], 0, self.bounds[0])
        assert len(budgets) == 0

    async def test_it_serves_requests_through_a_scheduler(self) -> None:
        bounds = self.bounds[0]
        results = []
        async with Scheduler(
            backend=ScriptedBackend(),
            policy=self.make_policy(),
            average_budget=bounds.average_budget,
            max_budget=bounds.max_budget,
            min_budget=bounds.min_budget,
            batching=BatchingConfig(max_batch_size=4, max_wait_s=0.001),
        ) as scheduler:

            async def submit(request: Request) -> None:
                results.append(await scheduler.submit(request))

            async with anyio.create_task_group() as tg:
                for request in self.make_requests(6):
                    tg.start_soon(submit, request)
        assert len(results) == 6
        assert all(bounds.min_budget <= r.budget <= bounds.max_budget for r in results)
