"""Chaos: hostile plug-ins, and a run that checks the scheduler's promises against them.

Each hostile part misbehaves on purpose, in the ways an outside check of the public protocols
found mattered: a :class:`HostileBackend` (every fault in :data:`BACKEND_FAULTS`: each error
type, including the scheduler's own, stray cancellations, hangs that ignore cancellation,
invalid and over-reported usage, wrong types), a :class:`HostileScorer`, a
:class:`HostilePolicy` and an :class:`AuditedLedger` that records any moment a tenant's spend
passes its quota. Which fault a call meets is written in its prompt (``"[fault:nan_tokens]"``),
so a test can aim one fault at one request and a run can draw them at random.

:func:`run_chaos` submits many requests with random faults, random caller cancellations and
short deadlines, then checks what must hold whatever the plug-ins do: each submit resolved
exactly once with a ``Result`` or a ``howhard.errors`` type, by its deadline; no tenant's spend
above its quota at any moment; no reservation left open; the scheduler still serving.
``tests/chaos`` runs it in CI and ``benchmarks/bench_chaos.py`` at 100k requests.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread

from howhard.config import BatchingConfig, QuotaConfig, RetryConfig, SchedulerConfig
from howhard.errors import (
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    HowhardError,
    InvalidRequest,
    PolicyError,
    QuotaExceeded,
    RateLimited,
    RequestTimeout,
    SchedulerClosed,
)
from howhard.ledger import Hold, InMemoryLedger, Reservation
from howhard.ledger.rules import Amount
from howhard.procedures import BestOfK
from howhard.scheduler import Scheduler
from howhard.types import BudgetBounds, Completion, Generation, GenerationParams, Request, Result

__all__ = [
    "BACKEND_FAULTS",
    "POLICY_FAULTS",
    "REQUEST_FAULTS",
    "SCORER_FAULTS",
    "AuditedLedger",
    "ChaosReport",
    "HostileBackend",
    "HostilePolicy",
    "HostileScorer",
    "fault_of",
    "run_chaos",
    "tagged",
]

_TAG = re.compile(r"\[fault:([a-z_]+)\]")


def tagged(prompt: str, fault: str) -> str:
    """``prompt`` marked so hostile plug-ins meet ``fault`` on it."""
    return f"{prompt} [fault:{fault}]"


def fault_of(text: str) -> str:
    """The fault a prompt is marked with (``"ok"`` when none)."""
    match = _TAG.search(text)
    return match.group(1) if match else "ok"


def _raise(error: BaseException) -> Any:
    raise error


BACKEND_FAULTS: Mapping[str, str] = {
    "timeout": "raises BackendTimeout (retried)",
    "rate_limited": "raises RateLimited with Retry-After: 0 (retried)",
    "rate_limited_for_a_day": "raises RateLimited with Retry-After: 86400",
    "unavailable": "raises BackendUnavailable (retried)",
    "rejected": "raises BackendRejected",
    "scheduler_closed": "raises SchedulerClosed, the scheduler's own type",
    "quota_exceeded": "raises QuotaExceeded, the scheduler's own type",
    "invalid_request": "raises InvalidRequest, the scheduler's own type",
    "policy_error": "raises PolicyError, the scheduler's own type",
    "request_timeout": "raises RequestTimeout, the scheduler's own type",
    "runtime_error": "raises RuntimeError (untranslated)",
    "stray_cancel": "raises asyncio.CancelledError while nothing was cancelled",
    "hang": "never returns (cancellable)",
    "shielded_hang": "ignores cancellation for a while (a shielded wait)",
    "thread_block": "blocks in a worker thread that cannot be cancelled",
    "nan_tokens": "reports NaN completion tokens",
    "inf_tokens": "reports infinite prompt tokens",
    "negative_tokens": "reports negative token counts",
    "fractional_tokens": "reports 2.5 tokens",
    "str_tokens": "reports tokens as a string",
    "none_tokens": "reports tokens as None",
    "bool_tokens": "reports tokens as True",
    "over_report": "reports 10**12 tokens per sample",
    "huge_prompt": "reports 10**12 prompt tokens",
    "extra_completions": "returns n + 5 completions",
    "long_logprobs": "returns 1,000 logprob entries per sample",
    "no_completions": "returns no completions",
    "str_completions": "returns a string as its completions",
    "str_text": "returns a completion whose text is not a string",
    "not_generation": "returns None instead of a Generation",
}
"""Every fault :class:`HostileBackend` injects, and what it does."""

SCORER_FAULTS: Mapping[str, str] = {
    "scorer_raises": "the scorer raises ValueError",
    "scorer_stray_cancel": "the scorer raises asyncio.CancelledError",
    "scorer_closed": "the scorer raises SchedulerClosed",
    "scorer_nan": "the scorer returns NaN scores",
    "scorer_short": "the scorer returns too few scores",
    "scorer_hang": "the scorer never returns (the deadline passes while scoring)",
}
"""Every fault :class:`HostileScorer` injects."""

POLICY_FAULTS: Mapping[str, str] = {
    "policy_raises": "the policy raises RuntimeError",
    "policy_stray_cancel": "the policy raises asyncio.CancelledError",
    "policy_hang": "the policy never returns",
    "policy_garbage": "the policy returns budgets of the wrong length",
}
"""Every fault :class:`HostilePolicy` injects (on a batch holding a request marked with it)."""

_NEEDS_DEADLINE = {"hang", "shielded_hang", "thread_block", "scorer_hang"}


class HostileBackend:
    """A backend that misbehaves as each prompt's fault says (see :data:`BACKEND_FAULTS`).

    Answers ``"The answer is 4."`` otherwise, counting one token per word. ``block_s`` bounds
    how long the uncancellable faults (``shielded_hang``, ``thread_block``) hold on.
    """

    def __init__(self, *, model: str = "hostile", block_s: float = 0.2) -> None:
        self._model = model
        self.block_s = block_s
        self.calls: Counter[str] = Counter()
        """Calls per fault met."""
        self.release = threading.Event()
        """Set to let every thread still blocked in ``thread_block`` return at once."""

    @property
    def model(self) -> str:
        """The model name (free: no prices)."""
        return self._model

    async def aclose(self) -> None:
        """Let blocked threads go."""
        self.release.set()

    async def generate(self, prompt: str, *, n: int, params: GenerationParams) -> Generation:
        """``n`` samples, or the prompt's fault."""
        fault = fault_of(prompt)
        self.calls[fault] += 1
        raised = _BACKEND_RAISES.get(fault)
        if raised is not None:
            _raise(raised())
        if fault == "hang":
            await anyio.sleep_forever()
        if fault == "shielded_hang":
            with anyio.CancelScope(shield=True):
                await anyio.sleep(self.block_s)
        if fault == "thread_block":
            await anyio.to_thread.run_sync(self.release.wait, self.block_s)
        text = "The answer is 4."
        tokens: Any = min(len(text.split()), params.max_tokens)
        prompt_tokens: Any = len(prompt.split())
        logprobs: Any = (-0.5,) * tokens if params.logprobs else None
        count = n
        if fault in _BAD_TOKENS:
            tokens = _BAD_TOKENS[fault]
        elif fault == "inf_tokens":
            prompt_tokens = math.inf
        elif fault == "over_report":
            tokens = 10**12
        elif fault == "huge_prompt":
            prompt_tokens = 10**12
        elif fault == "extra_completions":
            count = n + 5
        elif fault == "long_logprobs":
            logprobs = (-0.5,) * 1000
        elif fault == "no_completions":
            count = 0
        elif fault == "str_completions":
            return Generation(completions="abc", prompt_tokens=1)  # type: ignore[arg-type]
        elif fault == "str_text":
            bad = Completion(text=b"4", tokens=1)  # type: ignore[arg-type]
            return Generation(completions=(bad,) * n, prompt_tokens=1)
        elif fault == "not_generation":
            return None  # type: ignore[return-value]
        completion = Completion(text=text, tokens=tokens, logprobs=logprobs, finish_reason="stop")
        return Generation(completions=(completion,) * count, prompt_tokens=prompt_tokens)


_BACKEND_RAISES: dict[str, Any] = {
    "timeout": lambda: BackendTimeout("chaos: timed out"),
    "rate_limited": lambda: RateLimited("chaos: slow down", retry_after=0.0),
    "rate_limited_for_a_day": lambda: RateLimited("chaos: come back tomorrow", retry_after=86400),
    "unavailable": lambda: BackendUnavailable("chaos: 503"),
    "rejected": lambda: BackendRejected("chaos: 400"),
    "scheduler_closed": lambda: SchedulerClosed("chaos: a backend claiming the scheduler closed"),
    "quota_exceeded": lambda: QuotaExceeded("chaos: a backend claiming a quota"),
    "invalid_request": lambda: InvalidRequest("chaos: a backend claiming a bad request"),
    "policy_error": lambda: PolicyError("chaos: a backend claiming a policy error"),
    "request_timeout": lambda: RequestTimeout("chaos: a backend claiming a deadline"),
    "runtime_error": lambda: RuntimeError("chaos: untranslated"),
    "stray_cancel": lambda: asyncio.CancelledError(),
}

_BAD_TOKENS: dict[str, Any] = {
    "nan_tokens": math.nan,
    "negative_tokens": -7,
    "fractional_tokens": 2.5,
    "str_tokens": "12",
    "none_tokens": None,
    "bool_tokens": True,
}


class HostileScorer:
    """A scorer that misbehaves as each request's fault says (see :data:`SCORER_FAULTS`)."""

    async def score(self, request: Request, completions: Sequence[Completion]) -> list[float]:
        """1.0 per completion, or the fault."""
        fault = fault_of(request.prompt)
        if fault == "scorer_raises":
            raise ValueError("chaos: scorer bug")
        if fault == "scorer_stray_cancel":
            raise asyncio.CancelledError()
        if fault == "scorer_closed":
            raise SchedulerClosed("chaos: a scorer claiming the scheduler closed")
        if fault == "scorer_nan":
            return [math.nan] * len(completions)
        if fault == "scorer_short":
            return [1.0] * (len(completions) - 1)
        if fault == "scorer_hang":
            await anyio.sleep_forever()
        return [1.0] * len(completions)


class HostilePolicy:
    """Uniform budgets, unless a request of the batch is marked with a policy fault."""

    async def allocate(
        self, requests: Sequence[Request], total_budget: int, bounds: BudgetBounds
    ) -> list[int]:
        """One unit per request (within bounds), or the first fault found in the batch."""
        faults = {fault_of(r.prompt) for r in requests}
        if "policy_raises" in faults:
            raise RuntimeError("chaos: policy bug")
        if "policy_stray_cancel" in faults:
            raise asyncio.CancelledError()
        if "policy_hang" in faults:
            await anyio.sleep_forever()
        if "policy_garbage" in faults:
            return [1] * (len(requests) + 1)
        budget = max(bounds.min_budget, min(1, bounds.max_budget))
        budgets = [budget] * len(requests)
        for i in range(len(budgets)):
            if sum(budgets) <= total_budget:
                break
            budgets[i] = bounds.min_budget
        return budgets


class AuditedLedger(InMemoryLedger):
    """An in-memory ledger that checks after every operation that no tenant passed its quota.

    ``overspend`` counts the moments a tenant's held spend (settled in the window plus open
    holds) or settled spend was above a limit of its quota; ``closes`` counts settles and
    refunds per reservation id, so a double close shows.
    """

    def __init__(self, quotas: Mapping[str, QuotaConfig], **kwargs: Any) -> None:
        super().__init__(quotas, **kwargs)
        self.overspend = 0
        self.closes: Counter[str] = Counter()

    def _audit(self, tenant: str) -> None:
        spend = self.snapshot_nowait().get(tenant)
        if spend is None or spend.quota is None:
            return
        quota = spend.quota
        for usage in (spend.window + spend.reserved, spend.settled):
            if (
                (quota.units is not None and usage.units > quota.units)
                or (quota.tokens is not None and usage.total_tokens > quota.tokens)
                or (quota.cost is not None and usage.cost > quota.cost + 1e-9)
                or not all(math.isfinite(v) for v in (usage.total_tokens, usage.cost))
            ):
                self.overspend += 1

    async def reserve(
        self, tenant: str, hold: Hold, *, fallbacks: Sequence[Hold] = ()
    ) -> Reservation:
        """Reserve, then audit."""
        reservation = await super().reserve(tenant, hold, fallbacks=fallbacks)
        self._audit(tenant)
        return reservation

    async def settle(self, reservation: Reservation, actual: Amount) -> Amount:
        """Settle, then audit."""
        self.closes[reservation.id] += 1
        charged = await super().settle(reservation, actual)
        self._audit(reservation.tenant)
        return charged

    async def refund(self, reservation: Reservation) -> None:
        """Refund, then audit."""
        self.closes[reservation.id] += 1
        await super().refund(reservation)
        self._audit(reservation.tenant)


@dataclass
class ChaosReport:
    """What a chaos run did and whether the scheduler kept its promises."""

    requests: int
    faults: Counter[str] = field(default_factory=Counter)
    """Requests per injected fault (``ok``: none; ``caller_cancel``: the caller gave up)."""
    outcomes: Counter[str] = field(default_factory=Counter)
    """Resolutions per type: ``Result`` or an error class name."""
    lost: int = 0
    """Submits that never resolved."""
    duplicated: int = 0
    """Submits that resolved more than once."""
    untyped: int = 0
    """Submits that failed with something other than a ``howhard.errors`` type."""
    false_closed: int = 0
    """Submits told ``SchedulerClosed`` while the scheduler was running (a plug-in's lie)."""
    overspend: int = 0
    """Moments a tenant's spend was above its quota (the ledger's audit)."""
    double_closes: int = 0
    """Reservations settled or refunded more than once."""
    leaks: int = 0
    """Reservations still open at the end."""
    hangs: int = 0
    """Submits resolved later than their deadline plus ``slack_s`` plus the event loop's
    longest stall (a host too loaded to run the loop is not a scheduler holding a request)."""
    hung: Counter[str] = field(default_factory=Counter)
    """Those submits by fault."""
    worst_late_s: float = 0.0
    """The latest any submit resolved after its deadline (0 when none was late)."""
    worst_loop_lag_s: float = 0.0
    """The longest the event loop went without running a 10 ms ticker (load, GC, the GIL)."""
    still_serving: bool = False
    """Whether a clean request after the run got its ``Result``."""
    usage_violations: int = 0
    """Backend replies the scheduler counted as invalid or over their bounds."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every promise held."""
        return (
            self.lost
            == self.duplicated
            == self.untyped
            == self.false_closed
            == self.overspend
            == self.double_closes
            == self.leaks
            == self.hangs
            == 0
            and self.still_serving
        )

    def lines(self) -> list[str]:
        """The report as printable lines."""
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        outcomes = ", ".join(f"{k} {v}" for k, v in self.outcomes.most_common())
        return [
            f"requests {self.requests} in {self.seconds:.1f} s",
            f"faults by kind: {faults}",
            f"outcomes: {outcomes}",
            f"lost {self.lost}, duplicated {self.duplicated}, untyped {self.untyped}, "
            f"false SchedulerClosed {self.false_closed}, "
            f"overspend {self.overspend}, double closes {self.double_closes}, "
            f"leaks {self.leaks}, hangs {self.hangs} {dict(self.hung)}, "
            f"usage violations {self.usage_violations}",
            f"latest resolution after a deadline: {self.worst_late_s:.3f} s "
            f"(longest event-loop stall: {self.worst_loop_lag_s:.3f} s)",
            f"still serving: {self.still_serving}",
        ]


REQUEST_FAULTS: tuple[str, ...] = (*BACKEND_FAULTS, *SCORER_FAULTS)
"""Faults that hit one request (a policy fault fails its whole batch)."""


async def run_chaos(
    requests: int,
    *,
    seed: int = 0,
    fault_rate: float = 0.3,
    policy_fault_rate: float = 0.002,
    cancel_rate: float = 0.02,
    faults: Sequence[str] = REQUEST_FAULTS,
    timeout_s: float = 1.0,
    slack_s: float = 1.0,
    tenants: int = 3,
    quota: QuotaConfig | None = None,
    max_concurrency: int = 256,
    callers: int = 512,
) -> ChaosReport:
    """Submit ``requests`` through hostile plug-ins and check the promises (see the module).

    Each request meets one of ``faults`` with probability ``fault_rate`` (one of
    :data:`POLICY_FAULTS`, failing its batch, with ``policy_fault_rate``) and has its caller
    cancel it at a random point with probability ``cancel_rate``; every request has a deadline
    of ``timeout_s``, and one resolved more than ``slack_s`` (plus the event loop's longest
    stall) after it counts as a hang. Tenants share ``quota`` (by default tight enough
    that quotas are hit). At most ``callers`` submits wait at once, as a service's clients
    would be; the rest arrive as earlier ones resolve.
    """
    rng = random.Random(seed)
    quota = quota or QuotaConfig(units=requests // 4 + 10, tokens=requests * 30)
    quotas = {f"tenant-{t}": quota for t in range(tenants)}
    ledger = AuditedLedger({**quotas, "probe": QuotaConfig()})
    backend = HostileBackend(block_s=timeout_s * 2)
    report = ChaosReport(requests=requests)
    resolutions: Counter[int] = Counter()
    lateness: list[tuple[float, str]] = []
    started = time.monotonic()
    config = SchedulerConfig(
        average_budget=1,
        max_budget=2,
        batching=BatchingConfig(max_batch_size=32, max_wait_s=0.001),
        retry=RetryConfig(max_attempts=2, initial_backoff_s=0.0, max_backoff_s=0.01),
        max_concurrency=max_concurrency,
        max_queue=4 * max_concurrency,
        request_timeout_s=timeout_s,
        policy_timeout_s=timeout_s / 3,
    )
    async with Scheduler(
        backend=backend,
        policy=HostilePolicy(),
        procedure=BestOfK(HostileScorer()),
        ledger=ledger,
        config=config,
    ) as scheduler:

        async def submit_one(i: int, fault: str, cancel_after: float | None) -> None:
            prompt = f"question {i}" if fault == "ok" else tagged(f"question {i}", fault)
            begun = anyio.current_time()
            with anyio.CancelScope() as scope:
                if cancel_after is not None:
                    scope.deadline = begun + cancel_after
                try:
                    outcome: object = await scheduler.submit(prompt, tenant=f"tenant-{i % tenants}")
                except SchedulerClosed as exc:
                    outcome = exc
                    report.false_closed += 1
                except HowhardError as exc:
                    outcome = exc
                except Exception as exc:
                    outcome = exc
                    report.untyped += 1
                resolutions[i] += 1
                report.outcomes[type(outcome).__name__] += 1
                late = anyio.current_time() - (begun + timeout_s)
                report.worst_late_s = max(report.worst_late_s, late)
                if late > slack_s:
                    lateness.append((late, fault))
            if scope.cancelled_caught:
                resolutions[i] += 1
                report.outcomes["caller_cancelled"] += 1

        async def ticker() -> None:
            last = anyio.current_time()
            while True:
                await anyio.sleep(0.01)
                now = anyio.current_time()
                report.worst_loop_lag_s = max(report.worst_loop_lag_s, now - last - 0.01)
                last = now

        def plan() -> Iterator[tuple[int, str, float | None]]:
            for i in range(requests):
                draw = rng.random()
                if draw < policy_fault_rate:
                    fault = rng.choice(list(POLICY_FAULTS))
                elif draw < policy_fault_rate + fault_rate:
                    fault = rng.choice(faults)
                else:
                    fault = "ok"
                cancel_after = rng.uniform(0, timeout_s) if rng.random() < cancel_rate else None
                report.faults[fault] += 1
                if cancel_after is not None:
                    report.faults["caller_cancel"] += 1
                yield i, fault, cancel_after

        arrivals = plan()

        async def caller() -> None:
            # A client sending one request after another; ``callers`` of them at once.
            for i, fault, cancel_after in arrivals:
                await submit_one(i, fault, cancel_after)

        async with anyio.create_task_group() as watch:
            watch.start_soon(ticker)
            async with anyio.create_task_group() as group:
                for _ in range(callers):
                    group.start_soon(caller)
            watch.cancel_scope.cancel()
        backend.release.set()
        try:
            healthy = await scheduler.submit("are you still serving?", tenant="probe")
            report.still_serving = isinstance(healthy, Result)
        except HowhardError:
            report.still_serving = False
        stats = scheduler.stats()
        report.usage_violations = stats.usage_violations
    report.seconds = time.monotonic() - started
    # Late by more than the slack *and* more than the event loop itself stood still (a loaded
    # machine, the garbage collector): the scheduler held it, not the host.
    for late, fault in lateness:
        if late > slack_s + report.worst_loop_lag_s:
            report.hangs += 1
            report.hung[fault] += 1
    report.lost = sum(1 for i in range(requests) if resolutions[i] == 0)
    report.duplicated = sum(1 for count in resolutions.values() if count > 1)
    report.overspend = ledger.overspend
    report.double_closes = sum(1 for count in ledger.closes.values() if count > 1)
    report.leaks = sum(spend.open_reservations for spend in ledger.snapshot_nowait().values())
    if stats.submitted != stats.resolved:
        report.lost += stats.submitted - stats.resolved
    return report
