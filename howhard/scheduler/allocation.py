"""Allocation: asking the policy for a batch's budgets, within the scheduler's one set of bounds.

The policy receives the batch's requests, its total (from the carry rule) and the scheduler's
:class:`~howhard.types.BudgetBounds`; its answer is validated by
:func:`howhard.policies.check_budgets`. When it fails, each of the batch's requests gets an
error that says what to do next: a backend failure inside the policy (an encoder's server
briefly unavailable) keeps its class, so a ``BackendUnavailable`` stays retryable; anything
else is a ``PolicyError``.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Awaitable, Callable, Sequence

from howhard.errors import BackendError, HowhardError, PolicyError
from howhard.policies.base import Policy, check_budgets, takes_arguments
from howhard.types import BudgetBounds, Request

__all__ = ["Allocation"]


class Allocation:
    """The scheduler's policy stage: one policy, one set of bounds."""

    def __init__(self, policy: Policy, bounds: BudgetBounds) -> None:
        self.policy = policy
        self.bounds = bounds
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

    async def budgets(self, requests: Sequence[Request], total_budget: int) -> list[int]:
        """The policy's budgets for this batch, validated against the bounds and the total."""
        raw = await self._call(requests, total_budget)
        return check_budgets(
            raw,
            n=len(requests),
            total_budget=total_budget,
            min_budget=self.bounds.min_budget,
            max_budget=self.bounds.max_budget,
            policy=self.policy,
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
