"""Execution: one dispatched request, from its reservation to its ``Result``.

Reserve the request's worst case in the ledger (priced by the cost model) → run the procedure
through a :class:`~howhard.procedures.RetryingCaller` under the request's deadline → settle the
actual usage (never above the hold) or refund → assemble the ``Result``. Every path releases the
reservation exactly once; the scheduler resolves the caller with what this returns.
"""

from __future__ import annotations

import random
import time
from functools import partial
from types import MappingProxyType

import anyio

from howhard.backends.base import Backend
from howhard.config import SchedulerConfig
from howhard.errors import (
    BackendError,
    HowhardError,
    PluginError,
    QuotaExceeded,
    ScoringError,
    UsageError,
)
from howhard.ledger import Amount, Ledger, Reservation
from howhard.procedures.base import Outcome, Procedure
from howhard.procedures.caller import RetryingCaller
from howhard.procedures.containment import contain, describe
from howhard.scheduler.admission import Job
from howhard.scheduler.cost import CostModel
from howhard.scheduler.events import Events
from howhard.types import Request, Result, Usage

__all__ = ["LEDGER_PASSES", "PROCEDURE_PASSES", "Execution", "ledger_error"]

LEDGER_PASSES: tuple[type[BaseException], ...] = (HowhardError, QuotaExceeded)
"""What a ledger store may raise as it is: its own typed errors and ``QuotaExceeded``; the
scheduler's other types (``SchedulerClosed`` …) and anything else become ``PluginError``."""

PROCEDURE_PASSES: tuple[type[BaseException], ...] = (BackendError, ScoringError, PluginError)
"""What a procedure may raise as it is (its backend calls' and scorers' typed errors)."""


_PLAN_PASSES: tuple[type[BaseException], ...] = (HowhardError, UsageError)
"""The cost model's own errors (a plan of negative samples is a ``UsageError``) pass."""


def ledger_error(ledger: Ledger, operation: str, exc: BaseException) -> PluginError:
    """The typed error of a ledger store's ``operation`` that raised ``exc``."""
    return PluginError(f"{type(ledger).__name__}.{operation} raised {describe(exc)}")


class Execution:
    """Runs dispatched jobs on the backend with their reservations (see the module docstring)."""

    def __init__(
        self,
        *,
        backend: Backend,
        procedure: Procedure,
        ledger: Ledger,
        cost: CostModel,
        config: SchedulerConfig,
        rng: random.Random,
        log: Events,
    ) -> None:
        self._backend = backend
        self._procedure = procedure
        self._ledger = ledger
        self._cost = cost
        self._config = config
        self._bounds = config.bounds
        self._rng = rng
        self._log = log
        self.scope_type: type[anyio.CancelScope] = anyio.CancelScope
        """The async backend's cancel scope class (the scheduler resolves it once, at start)."""
        self.violations = 0
        """Backend replies whose usage figures were invalid or over their bounds."""

    async def run(self, job: Job) -> tuple[Result | None, BaseException | None]:
        """Run ``job``; returns its result or its error (a passed deadline included).

        A cancellation of the scheduler itself propagates, after the reservation is closed.
        Whatever happens, the reservation is closed once: settled with the result's usage;
        after a failure, a deadline or a cancellation, settled with what the backend calls that
        answered produced (work generated is charged), or refunded when none did.
        """
        reservation: Reservation | None = None
        caller: RetryingCaller | None = None
        result: Result | None = None
        error: BaseException | None = None
        job.began = time.monotonic()
        try:
            # No deadline of its own: the caller's scope times the request and cancels this
            # one when it expires (one timer per request).
            with self.scope_type() as scope:
                job.scope = scope
                try:
                    reservation = await self._reserve(job)
                    caller = self._caller(job)
                    outcome = await self._run_procedure(job.request, reservation, caller)
                    held, reservation = reservation, None
                    result = await self._finish(job, held, caller, outcome)
                except Exception as exc:
                    error = exc
            if scope.cancelled_caught and not job.cancelled:
                error = job.timeout_error()
        finally:
            if caller is not None:
                self.violations += caller.violations
            if reservation is not None:
                await self._close_failed(job.request, reservation, caller)
        return result, error

    async def _reserve(self, job: Job) -> Reservation:
        request, cost = job.request, self._cost
        shape = cost.shape(request.prompt, job.params.max_tokens, job.timeout_s)
        degrade = job.quota is not None and job.quota.on_exceed == "degrade"
        # Pricing calls plug-in code (the procedure's plan, a backend's model name).
        with contain(self._plan_error, passes=_PLAN_PASSES):
            hold = cost.hold(shape, job.budget)
            fallbacks = cost.fallbacks(shape, job.budget, self._bounds) if degrade else ()
        with contain(partial(ledger_error, self._ledger, "reserve"), passes=LEDGER_PASSES):
            reservation = await self._ledger.reserve(request.tenant, hold, fallbacks=fallbacks)
        if not isinstance(reservation, Reservation):
            raise PluginError(
                f"{type(self._ledger).__name__}.reserve returned {type(reservation).__name__}; "
                "a ledger store returns a Reservation"
            )
        if reservation.budget != job.budget:
            self._log.info(
                "quota.degraded",
                tenant=request.tenant,
                requested=job.budget,
                granted=reservation.budget,
            )
        return reservation

    def _caller(self, job: Job) -> RetryingCaller:
        return RetryingCaller(
            self._backend,
            job.params,
            retry=self._config.retry,
            price=self._cost.price,
            rng=self._rng,
            log=self._log,
            prompt_overhead_tokens=self._config.prompt_overhead_tokens,
            deadline=job.deadline,
        )

    async def _run_procedure(
        self, request: Request, reservation: Reservation, caller: RetryingCaller
    ) -> Outcome:
        with contain(self._procedure_error, passes=PROCEDURE_PASSES):
            outcome = await self._procedure.run(request, reservation.budget, caller)
        if not isinstance(outcome, Outcome):
            raise UsageError(
                f"{type(self._procedure).__name__}.run returned {type(outcome).__name__}; "
                "a procedure returns an Outcome"
            )
        return outcome

    def _plan_error(self, exc: BaseException) -> PluginError:
        return PluginError(
            f"pricing the plan of {type(self._procedure).__name__} raised {describe(exc)}"
        )

    def _procedure_error(self, exc: BaseException) -> PluginError:
        return PluginError(f"{type(self._procedure).__name__}.run raised {describe(exc)}")

    async def _finish(
        self, job: Job, reservation: Reservation, caller: RetryingCaller, outcome: Outcome
    ) -> Result:
        """Settle what the procedure used and assemble the result."""
        request = job.request
        usage = caller.usage_with_units(reservation.budget)
        await self._settle(request, reservation, caller, reservation.budget, usage)
        metadata = outcome.metadata
        if job.budget != usage.units:
            metadata = MappingProxyType({**metadata, "requested_budget": job.budget})
        return Result(
            request_id=request.id,
            answer=outcome.answer,
            chosen=outcome.chosen,
            candidates=outcome.candidates,
            budget=usage.units,
            usage=usage,
            latency_s=time.monotonic() - job.started,
            tenant=request.tenant,
            abstained=outcome.abstained,
            metadata=metadata,
        )

    async def _settle(
        self,
        request: Request,
        reservation: Reservation,
        caller: RetryingCaller,
        units: int,
        usage: Usage,
    ) -> None:
        actual = Amount(
            units=units,
            prompt_tokens=caller.prompt_tokens,
            completion_tokens=caller.completion_tokens,
            cost_micros=caller.cost_micros,
        )
        # Shielded: a cancellation landing inside an async ledger's settle, after it committed,
        # would otherwise have the caller refund the same reservation a second time.
        with (
            self.scope_type(shield=True),
            contain(partial(ledger_error, self._ledger, "settle"), passes=LEDGER_PASSES),
        ):
            charged = await self._ledger.settle(reservation, actual)
        if charged != actual:
            # Charged at most the hold; the warning says the bound needs widening.
            self._log.warning(
                "ledger.overrun",
                tenant=request.tenant,
                reserved=reservation.amount.usage(),
                actual=usage,
                charged=charged.usage() if isinstance(charged, Amount) else charged,
                fix="raise SchedulerConfig.prompt_overhead_tokens",
            )

    async def _close_failed(
        self, request: Request, reservation: Reservation, caller: RetryingCaller | None
    ) -> None:
        """Close the reservation of a request that did not finish (failure, deadline, cancel).

        Work the backend did (its answered calls, or the worst case of a reply with invalid
        figures) is charged; only work never generated is refunded.
        """
        with self.scope_type(shield=True):
            try:
                if caller is not None and caller.calls:
                    units = reservation.budget
                    await self._settle(
                        request, reservation, caller, units, caller.usage_with_units(units)
                    )
                    self._log.info(
                        "request.charged_on_failure",
                        tenant=request.tenant,
                        reservation=reservation.id,
                        prompt_tokens=caller.prompt_tokens,
                        completion_tokens=caller.completion_tokens,
                    )
                else:
                    with contain(
                        partial(ledger_error, self._ledger, "refund"), passes=LEDGER_PASSES
                    ):
                        await self._ledger.refund(reservation)
            except Exception as exc:
                # A remote store may fail here; the caller must still get its outcome and the
                # other requests their workers, so log it rather than crash.
                self._log.error(
                    "ledger.close_failed",
                    tenant=request.tenant,
                    reservation=reservation.id,
                    error=f"{type(exc).__name__}: {exc}",
                )

    def log_outcome(self, job: Job, result: Result | None, error: BaseException | None) -> None:
        """Emit ``request.done``, ``quota.rejected`` or ``request.failed`` for a resolved job."""
        if result is not None:
            self._log.debug(
                "request.done",
                request_id=result.request_id,
                tenant=result.tenant,
                budget=result.budget,
                samples=len(result.candidates),
                prompt_tokens=result.usage.prompt_tokens,
                completion_tokens=result.usage.completion_tokens,
                tokens=result.usage.total_tokens,
                cost=result.usage.cost,
                queue_s=round(job.began - job.started, 6),
                latency_s=round(result.latency_s, 6),
                outcome="abstained" if result.abstained else "answered",
            )
        elif isinstance(error, QuotaExceeded):
            self._log.info(
                "quota.rejected",
                request_id=job.request.id,
                tenant=job.request.tenant,
                budget=job.budget,
            )
        elif error is not None:
            self._log.info(
                "request.failed",
                request_id=job.request.id,
                tenant=job.request.tenant,
                budget=job.budget,
                error=type(error).__name__,
                expected=isinstance(error, HowhardError),
                latency_s=round(time.monotonic() - job.started, 6),
            )
