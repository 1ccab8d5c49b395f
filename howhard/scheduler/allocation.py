"""Allocation: asking the policy for a batch's budgets, within the scheduler's one set of bounds.

The policy receives the batch's requests, its total (from the carry rule,
:class:`~howhard.scheduler.batcher.BudgetCarry`) and the scheduler's
:class:`~howhard.types.BudgetBounds`; its answer is validated by
:func:`howhard.policies.check_budgets`. When it fails, each of the batch's requests gets an
error that says what to do next: a backend failure inside the policy (an encoder's server
briefly unavailable) keeps its class, so a ``BackendUnavailable`` stays retryable; anything
else is a ``PolicyError``. A policy that learns (``observe``,
:class:`~howhard.policies.base.LearningPolicy`) gets each resolved request's feedback here too;
its failures are logged, never raised.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence

import anyio

from howhard.errors import BackendError, HowhardError, PolicyError
from howhard.policies.base import Policy, check_budgets, takes_arguments
from howhard.procedures.containment import contained, describe
from howhard.scheduler.batcher import BudgetCarry
from howhard.scheduler.events import Events
from howhard.types import BudgetBounds, Feedback, Request, Result

__all__ = ["Allocation"]


class Allocation:
    """The scheduler's policy stage: one policy, one set of bounds, the budget carry."""

    def __init__(
        self,
        policy: Policy,
        bounds: BudgetBounds,
        carry: BudgetCarry,
        log: Events,
        *,
        timeout_s: float = math.inf,
    ) -> None:
        self.policy = policy
        self.timeout_s = timeout_s
        """Seconds a policy may take over one batch before it fails with ``PolicyError``."""
        self.bounds = bounds
        self.carry = carry
        """Units earned by earlier batches and not yet allocated (the carry rule)."""
        self.batches = 0
        """Batches allocated (or attempted) so far."""
        self._log = log
        self._call: Callable[[Sequence[Request], int], Awaitable[Sequence[int]]]
        if takes_arguments(policy.allocate, 3):
            self._call = lambda requests, total: policy.allocate(requests, total, bounds)
        else:
            warnings.warn(
                f"{type(policy).__name__}.allocate(requests, total_budget) is deprecated: take "
                "the scheduler's budget bounds as a third argument, "
                "allocate(requests, total_budget, bounds)",
                DeprecationWarning,
                stacklevel=3,
            )
            self._call = policy.allocate  # type: ignore[assignment]
        self._observe: Callable[[Feedback], object] | None = getattr(policy, "observe", None)

    async def allocate(self, requests: Sequence[Request], started: float) -> list[int]:
        """Budgets for a batch whose first request arrived at ``started`` (monotonic).

        Takes the batch's total from the carry and records what the policy spent; raises what
        the policy raised (see :meth:`error_for`), leaving the carry untouched.
        """
        n = len(requests)
        total = self.carry.total(n)
        self.batches += 1
        self._log.debug("batch.formed", size=n, wait_s=round(time.monotonic() - started, 6))
        try:
            budgets = await self.budgets(requests, total)
        except Exception as exc:
            policy = type(self.policy).__name__
            self._log.warning("batch.policy_failed", size=n, policy=policy, error=str(exc))
            raise
        spent = sum(budgets)
        self.carry.spend(n, spent)
        self._log.debug(
            "batch.allocated",
            size=n,
            total=total,
            spent=spent,
            min=min(budgets),
            max=max(budgets),
            carry=float(self.carry.carry),
        )
        return budgets

    async def budgets(self, requests: Sequence[Request], total_budget: int) -> list[int]:
        """The policy's budgets for this batch, validated against the bounds and the total.

        The policy (and its predictor) runs contained (:mod:`howhard.procedures.containment`)
        and under ``timeout_s``: a policy that raises a stray cancellation or never returns
        fails this batch with ``PolicyError``, and later batches go on.
        """
        name = type(self.policy).__name__
        with anyio.move_on_after(self.timeout_s) as scope:
            raw = await contained(
                lambda: self._call(requests, total_budget),
                lambda exc: PolicyError(f"{name}.allocate raised {describe(exc)}"),
                passes=(BackendError,),
            )
        if scope.cancelled_caught:
            raise PolicyError(
                f"{name}.allocate did not return within policy_timeout_s={self.timeout_s}; "
                "make it faster, or raise SchedulerConfig.policy_timeout_s"
            )
        return check_budgets(
            raw,
            n=len(requests),
            total_budget=total_budget,
            min_budget=self.bounds.min_budget,
            max_budget=self.bounds.max_budget,
            policy=self.policy,
        )

    def observe(self, request: Request, result: Result) -> None:
        """Hand a resolved request's feedback to a learning policy; never raises.

        ``successes`` comes from the procedure's verdict (``Result.metadata["successes"]``,
        reported by best-of-k with a 0/1 verifier); without one the policy learns nothing.
        """
        if self._observe is None:
            return
        successes = result.metadata.get("successes")
        feedback = Feedback(
            request=request,
            budget=result.budget,
            samples=len(result.candidates),
            successes=successes if type(successes) is int else None,
        )
        try:
            self._observe(feedback)
        except Exception as exc:
            # The request is already answered: a learning bug must not fail it or the stream.
            self._log.warning(
                "policy.observe_failed",
                policy=type(self.policy).__name__,
                request_id=request.id,
                error=f"{type(exc).__name__}: {exc}",
            )

    def error_for(self, exc: Exception) -> HowhardError:
        """The error one request of a batch whose allocation raised ``exc`` resolves with."""
        if isinstance(exc, BackendError):
            # A copy per request: one shared instance would collect every caller's traceback.
            kept = copy.copy(exc)
            kept.__cause__ = exc
            return kept
        name = type(self.policy).__name__
        if isinstance(exc, PolicyError):
            error = PolicyError(str(exc))
        else:
            error = PolicyError(f"{name}.allocate raised {type(exc).__name__}: {exc}")
        error.__cause__ = exc
        return error
