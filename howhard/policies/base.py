"""The Policy and Predictor protocols: the hooks users plug into the scheduler.

A *policy* splits a batch's compute budget across its requests. A *predictor* estimates, per
request, the marginal reward of each extra unit of compute; ``AdaptivePolicy`` turns those
predictions into budgets with an allocator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from howhard.types import Request

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["Policy", "Predictor"]


@runtime_checkable
class Policy(Protocol):
    """Decides how many compute units each request of a batch gets.

    The scheduler validates the answer: one non-negative integer per request, summing to at most
    ``total_budget``; otherwise the batch's requests fail with ``PolicyError``.
    """

    async def allocate(self, requests: Sequence[Request], total_budget: int) -> Sequence[int]:
        """Return one budget per request (same order), with ``sum <= total_budget``."""
        ...


@runtime_checkable
class Predictor(Protocol):
    """Predicts marginal rewards: column ``j`` is the gain of unit ``j + 1`` for each request.

    For binary rewards column 0 is the single-sample success probability λ. Rows should be
    non-increasing for the greedy allocator to be exact.
    """

    max_budget: int
    """Number of columns ``predict`` returns (the largest budget one request can get)."""

    async def predict(self, requests: Sequence[Request]) -> npt.NDArray[np.float64]:
        """Return marginals of shape ``(len(requests), max_budget)``."""
        ...
