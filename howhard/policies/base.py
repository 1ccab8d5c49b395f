"""The Policy and Predictor protocols: the hooks users plug into the scheduler.

A *policy* splits a batch's compute budget across its requests, within the scheduler's
:class:`~howhard.types.BudgetBounds` (handed to it with every batch, so budget limits live in
one place). A *predictor* estimates, per request, the marginal reward of each extra unit of
compute; ``AdaptivePolicy`` turns those predictions into budgets with an allocator.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from howhard.errors import PolicyError
from howhard.types import BudgetBounds, Feedback, Request

__all__ = ["LearningPolicy", "Policy", "Predictor", "check_budgets", "takes_arguments"]


@runtime_checkable
class Policy(Protocol):
    """Decides how many compute units each request of a batch gets.

    The scheduler validates the answer: one integer per request in
    ``[bounds.min_budget, bounds.max_budget]``, summing to at most ``total_budget``; otherwise
    the batch's requests fail with ``PolicyError``. (A policy written against the older
    two-argument form, ``allocate(requests, total_budget)``, still runs, with a
    ``DeprecationWarning``.)
    """

    async def allocate(
        self, requests: Sequence[Request], total_budget: int, bounds: BudgetBounds
    ) -> Sequence[int]:
        """Return one budget per request (same order), with ``sum <= total_budget``."""
        ...


@runtime_checkable
class LearningPolicy(Policy, Protocol):
    """A policy that also learns from what served requests revealed.

    The scheduler calls ``observe`` once per request that resolved with a result, after the
    caller's future resolved; an exception there is logged and never fails a request. It must
    be quick and must not block (it runs on the scheduler's event loop).
    """

    def observe(self, feedback: Feedback) -> None:
        """Take one request's feedback (budget, samples drawn, verified successes)."""
        ...


@runtime_checkable
class Predictor(Protocol):
    """Predicts marginal rewards: column ``j`` is the gain of unit ``j + 1`` for each request.

    For binary rewards column 0 is the single-sample success probability λ. Rows should be
    non-increasing for the greedy allocator to be exact. ``max_budget`` (the columns wanted)
    comes from the policy's bounds.
    """

    async def predict(
        self, requests: Sequence[Request], max_budget: int
    ) -> npt.NDArray[np.float64]:
        """Return marginals of shape ``(len(requests), max_budget)``."""
        ...


def takes_arguments(function: Callable[..., Any], count: int) -> bool:
    """Whether ``function`` (a bound method) accepts ``count`` positional arguments.

    How the scheduler and ``AdaptivePolicy`` tell the current plug-in signatures from the
    older ones (a policy without ``bounds``, a predictor without ``max_budget``).
    """
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: assume the current form
        return True
    positional = 0
    for parameter in parameters:
        if parameter.kind is parameter.VAR_POSITIONAL:
            return True
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= count


def check_budgets(
    budgets: object,
    *,
    n: int,
    total_budget: int,
    min_budget: int = 0,
    max_budget: int | None = None,
    policy: object = None,
) -> list[int]:
    """Validate what ``policy.allocate`` returned and convert it to a list of ints.

    Raises ``PolicyError`` naming the policy, the offending value and the rule it broke: one
    integer per request, each in ``[min_budget, max_budget]``, summing to at most
    ``total_budget``. The scheduler calls this on every batch; policy authors can call it in tests.
    """
    name = type(policy).__name__ if policy is not None else "policy"
    if isinstance(budgets, np.ndarray):
        if budgets.ndim != 1 or budgets.dtype.kind not in "iu":
            raise PolicyError(
                f"{name}.allocate returned an array of shape {budgets.shape} and dtype "
                f"{budgets.dtype}; return a 1-D integer array with one budget per request"
            )
        values: list[object] = budgets.tolist()
    elif isinstance(budgets, Sequence) and not isinstance(budgets, str | bytes):
        values = list(budgets)
    else:
        raise PolicyError(
            f"{name}.allocate returned {type(budgets).__name__}; return a sequence of ints"
        )
    if len(values) != n:
        raise PolicyError(
            f"{name}.allocate returned {len(values)} budgets for a batch of {n} requests; "
            "return exactly one budget per request, in order"
        )
    out: list[int] = []
    for i, value in enumerate(values):
        # `type(...) is int` first: the numbers.Integral ABC check is slow on the hot path.
        if type(value) is not int and (
            isinstance(value, bool) or not isinstance(value, numbers.Integral)
        ):
            raise PolicyError(f"{name}.allocate returned budget[{i}] = {value!r}; budgets are ints")
        budget = int(value)
        if budget < min_budget:
            raise PolicyError(
                f"{name}.allocate returned budget[{i}] = {budget}; budgets must be "
                f">= min_budget = {min_budget}"
            )
        if max_budget is not None and budget > max_budget:
            raise PolicyError(
                f"{name}.allocate returned budget[{i}] = {budget}; budgets must be "
                f"<= max_budget = {max_budget}"
            )
        out.append(budget)
    spent = sum(out)
    if spent > total_budget:
        raise PolicyError(
            f"{name}.allocate gave {spent} units in total but the batch's budget is "
            f"{total_budget}; keep sum(budgets) <= total_budget"
        )
    return out
