"""Ten thousand requests through hostile plug-ins: every promise checked after the run.

``benchmarks/bench_chaos.py`` runs the same at 100k requests and prints the figures.
"""

import pytest

from howhard.testing.chaos import BACKEND_FAULTS, POLICY_FAULTS, SCORER_FAULTS, run_chaos

pytestmark = pytest.mark.anyio


async def test_ten_thousand_hostile_requests_keep_every_promise() -> None:
    report = await run_chaos(10_000, seed=11)
    lines = "\n".join(report.lines())
    assert report.ok, lines
    # The run met every fault, and the scheduler still did useful work around them.
    assert set(report.faults) >= {*BACKEND_FAULTS, *SCORER_FAULTS, *POLICY_FAULTS}, lines
    assert report.outcomes["Result"] > 5_000, lines
    assert report.outcomes["QuotaExceeded"] > 0, lines
    assert report.outcomes["caller_cancelled"] > 0, lines
    assert report.usage_violations > 0, lines
    assert report.outcomes["SchedulerClosed"] == 0, lines
