"""A request that gets budget 0 abstains, and its Result says why."""

import pytest

from howhard import BatchingConfig, Scheduler
from howhard.backends import ScriptedBackend
from howhard.policies import UniformPolicy
from howhard.procedures import BestOfK, SelfConsistency
from howhard.scoring import ExactMatch

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("procedure", [BestOfK(ExactMatch()), SelfConsistency()])
async def test_budget_zero_abstains_with_a_reason(procedure: object) -> None:
    backend = ScriptedBackend()
    async with Scheduler(
        backend=backend,
        policy=UniformPolicy(max_budget=0),
        procedure=procedure,  # type: ignore[arg-type]
        average_budget=0.5,
        max_budget=1,
        batching=BatchingConfig(max_batch_size=1, max_wait_s=0.001),
    ) as scheduler:
        result = await scheduler.submit("What is 1 + 1?", reference="2")
    assert result.abstained and result.budget == 0 and result.chosen is None
    assert "budget 0" in result.metadata["abstain_reason"]
    assert backend.calls == []
