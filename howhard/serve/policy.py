"""The policy a served model runs: the configured one, plus the ``howhard`` extension's knobs.

``build_policy`` is the one place a model's policy is built from its config. Around it,
``ServingPolicy`` applies each request's ``max_budget`` (units beyond it are worth nothing to the
allocator, so they go to other requests of the batch) and ``priority`` (a weight on the
request's predicted gains), and remembers each request's predicted single-sample success so the
response can report it.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.policies.base import Policy, Predictor
from howhard.policies.online_adaptive import OnlineAdaptivePolicy
from howhard.serve.config import DEFAULT_PROBE, ModelConfig
from howhard.types import BudgetBounds, Feedback, Request

__all__ = ["ServingPolicy", "build_policy"]

_PREDICTIONS_KEPT = 65_536  # bound on predictions waiting to be read (leaks cannot grow past it)


class _ServingPredictor:
    """Wraps a predictor: records column 0, weights rows by priority, zeroes units past caps."""

    def __init__(self, inner: Predictor) -> None:
        self.inner = inner
        self.predictions: dict[str, float] = {}
        """Column 0 of each request's row, by request id, until the policy takes it."""

    async def predict(
        self, requests: Sequence[Request], max_budget: int
    ) -> npt.NDArray[np.float64]:
        rows = np.array(await self.inner.predict(requests, max_budget), dtype=np.float64)
        if rows.ndim != 2 or rows.shape[0] != len(requests):
            return rows  # AdaptivePolicy reports the wrong shape with the inner predictor's name
        if len(self.predictions) + len(requests) > _PREDICTIONS_KEPT:
            self.predictions.clear()
        for i, request in enumerate(requests):
            self.predictions[request.id] = float(rows[i, 0]) if rows.shape[1] else 0.0
            metadata = request.metadata
            priority = metadata.get("priority")
            if priority is not None:
                rows[i] *= float(priority)
            cap = metadata.get("max_budget")
            if cap is not None:
                rows[i, int(cap) :] = 0.0
        return rows

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()


class ServingPolicy:
    """A policy with per-request caps (``metadata["max_budget"]``) and recorded predictions.

    ``predictor`` is the wrapped predictor ``inner`` allocates with, when it has one.
    """

    def __init__(
        self, inner: Policy, predictor: _ServingPredictor | OnlineAdaptivePolicy | None = None
    ) -> None:
        self.inner = inner
        self._predictor = predictor
        self._predicted: MutableMapping[str, float] = (
            {} if predictor is None else predictor.predictions
        )

    def take_prediction(self, request_id: str) -> float | None:
        """The predicted single-sample success of ``request_id`` (once), if a probe ran."""
        return self._predicted.pop(request_id, None)

    async def allocate(
        self, requests: Sequence[Request], total_budget: int, bounds: BudgetBounds
    ) -> list[int]:
        """The inner policy's budgets, each capped at its request's ``max_budget``."""
        budgets = list(await self.inner.allocate(requests, total_budget, bounds))
        if len(budgets) != len(requests):
            return budgets  # the scheduler's check names the inner policy's mistake
        for i, request in enumerate(requests):
            cap = request.metadata.get("max_budget")
            if cap is not None and isinstance(budgets[i], int | np.integer) and budgets[i] > cap:
                budgets[i] = int(cap)
        return budgets

    def stats(self) -> dict[str, float]:
        """What a learning inner policy reports (posterior, calibration, shrinkage), else {}."""
        stats = getattr(self.inner, "stats", None)
        return dict(stats()) if stats is not None else {}

    def observe(self, feedback: Feedback) -> None:
        """Forward verified outcomes to the inner policy when it learns."""
        observe = getattr(self.inner, "observe", None)
        if observe is not None:
            observe(feedback)

    async def aclose(self) -> None:
        """Close the probe's encoder, if it owns one."""
        if self._predictor is not None:
            await self._predictor.aclose()


def build_policy(model: ModelConfig, *, encoder: Any = None) -> ServingPolicy:
    """The policy ``model`` asks for (the one place a served model's policy is built).

    ``adaptive`` is :func:`howhard.policies.default_policy` on the configured probe (default:
    the shipped λ probe) with the encoder its checkpoint records unless ``encoder`` is given:
    the probe's marginals map, learning from verified requests, every request answered.
    """
    from howhard.policies import UniformPolicy, default_policy

    # The budget bounds (average, max, min) come from the model's Scheduler with every batch.
    if model.policy == "uniform":
        return ServingPolicy(UniformPolicy())
    probe = Path(model.probe) if model.probe is not None else DEFAULT_PROBE
    # Priorities and caps reach it through request metadata (``priority``, ``max_budget``).
    policy = default_policy(probe=probe, encoder=encoder)
    return ServingPolicy(policy, policy)
