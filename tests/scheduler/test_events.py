"""Events go through one hub: structlog and every subscribed Observer see the same events."""

from __future__ import annotations

import pytest

from howhard import QuotaConfig, Scheduler
from howhard.backends import ScriptedBackend
from howhard.errors import ConfigError, QuotaExceeded
from howhard.scheduler import InMemoryLedger
from howhard.scheduler.events import Event, Events

pytestmark = pytest.mark.anyio


async def test_observers_see_every_request_outcome_whatever_the_log_level() -> None:
    seen: list[Event] = []
    ledger = InMemoryLedger({"a": QuotaConfig(units=2)})
    async with Scheduler(
        backend=ScriptedBackend({"q": "The answer is 3."}),
        average_budget=2,
        ledger=ledger,
        observers=[seen.append],
    ) as scheduler:
        result = await scheduler.submit("q", tenant="a")
        with pytest.raises(QuotaExceeded):
            await scheduler.submit("q", tenant="a")

    names = [e.name for e in seen]
    assert names.count("batch.formed") == 2 and names.count("batch.allocated") == 2
    done = next(e for e in seen if e.name == "request.done")
    assert done.source == "howhard.scheduler"
    assert done.fields["request_id"] == result.request_id
    assert done.fields["tenant"] == "a" and done.fields["budget"] == 2
    assert done.fields["samples"] == 2
    assert 0 <= done.fields["queue_s"] <= done.fields["latency_s"]
    rejected = next(e for e in seen if e.name == "quota.rejected")
    assert rejected.fields["tenant"] == "a"
    with pytest.raises(TypeError):
        done.fields["tenant"] = "b"  # type: ignore[index]  # observers get read-only data


async def test_a_failing_observer_never_fails_a_request() -> None:
    calls: list[str] = []

    def broken(event: Event) -> None:
        calls.append(event.name)
        raise RuntimeError("observer bug")

    async with Scheduler(
        backend=ScriptedBackend(), average_budget=1, observers=[broken]
    ) as scheduler:
        result = await scheduler.submit("q")
    assert result.answer is not None
    assert "request.done" in calls  # still called for every event after its first failure


def test_an_observer_must_be_callable() -> None:
    with pytest.raises(ConfigError, match="observer must be callable"):
        Events("x", [object()])  # type: ignore[list-item]
