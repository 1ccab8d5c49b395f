"""The policy a served model runs: the configured one, plus the ``howhard`` extension's knobs.

``build_policy`` is the one place a model's policy is built from its config. The adaptive
policy reads each request's ``max_budget`` (units beyond it are worth nothing to the allocator,
so they go to other requests of the batch) and ``priority`` (a weight on the request's predicted
gains) from its metadata; around it, ``ServingPolicy`` caps every budget at ``max_budget`` (a
uniform policy included) and hands on each request's predicted single-sample success so the
response can report it.

A model whose procedure is ``sequential-best-of-k`` also has a stream allocator (``rounds_gate =
"stream"``, the default): a :class:`~howhard.policies.StreamGate` that grants each round by its
value against a price keeping the model's ``average_budget`` exact, each request capped at its
``max_budget`` rather than at a share of its batch. Its prior for a request
comes from the same probe reading the policy stage made for it (the calibrated logit and the
group key), or from the population's mean logit when no probe ran (``policy = "uniform"``).
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from howhard.policies.base import Policy
from howhard.policies.online_adaptive import OnlineAdaptivePolicy
from howhard.policies.priors import OnlinePrior
from howhard.policies.stream import StreamAllocator, StreamGate
from howhard.serve.config import DEFAULT_PROBE, ModelConfig
from howhard.types import BudgetBounds, Feedback, Request

__all__ = ["ServingPolicy", "build_gate", "build_policy", "gates_rounds"]


class ServingPolicy:
    """A policy with per-request caps (``metadata["max_budget"]``) and recorded predictions.

    ``predictor`` is the wrapped predictor ``inner`` allocates with, when it has one. ``gate``
    is the stream allocator of the model's sequential rounds, if it has one (:func:`build_gate`);
    its figures join :meth:`stats` as ``rounds_*``.
    """

    def __init__(
        self,
        inner: Policy,
        predictor: OnlineAdaptivePolicy | None = None,
        *,
        gate: StreamGate | None = None,
    ) -> None:
        self.inner = inner
        self.gate = gate
        self._predictor = predictor
        self._predicted: MutableMapping[str, float] = (
            {} if predictor is None else predictor.predictions
        )

    def take_prediction(self, request_id: str) -> float | None:
        """The predicted single-sample success of ``request_id`` (once), if a probe ran."""
        return self._predicted.pop(request_id, None)

    def _reading(self, request: Request) -> tuple[float, str] | None:
        reading = getattr(self.inner, "reading", None)
        return reading(request.id) if callable(reading) else None

    def logit(self, request: Request, default: float) -> float:
        """The probe's calibrated logit for ``request`` from its batch's policy stage, or
        ``default`` when no probe read it (a uniform policy, or its feedback already came)."""
        reading = self._reading(request)
        return default if reading is None else reading[0]

    def group(self, request: Request) -> str:
        """``request``'s group key as the policy stage saw it (the caller's
        ``metadata["group"]`` and/or the probe's feature cluster), else ``metadata["group"]``,
        else ``"*"``."""
        reading = self._reading(request)
        if reading is not None:
            return reading[1]
        key = request.metadata.get("group")
        return "*" if key is None else str(key)

    async def allocate(
        self, requests: Sequence[Request], total_budget: int, bounds: BudgetBounds
    ) -> list[int]:
        """The inner policy's budgets, each capped at its request's ``max_budget``.

        With a round gate every budget is the request's cap: the gate, not the batch, decides
        how much of it each request draws (the scheduler's average is then the cap, so the
        ledger holds the cap and settles what was drawn). The inner policy still runs, so its
        probe reading and predicted success are there for the gate and the response.
        """
        budgets = list(await self.inner.allocate(requests, total_budget, bounds))
        if len(budgets) != len(requests):
            return budgets  # the scheduler's check names the inner policy's mistake
        for i, request in enumerate(requests):
            cap = request.metadata.get("max_budget")
            if self.gate is not None:
                budgets[i] = bounds.max_budget if cap is None else min(int(cap), bounds.max_budget)
            elif cap is not None and isinstance(budgets[i], int | np.integer) and budgets[i] > cap:
                budgets[i] = int(cap)
        return budgets

    def stats(self) -> dict[str, float]:
        """What a learning inner policy reports (posterior, calibration, shrinkage), and the
        round gate's figures as ``rounds_pool``, ``rounds_spent``, ``rounds_price``,
        ``rounds_prior_strength`` …; {} when there is neither."""
        stats = getattr(self.inner, "stats", None)
        out = dict(stats()) if stats is not None else {}
        if self.gate is not None:
            out.update({f"rounds_{k}": v for k, v in self.gate.stats().items()})
        return out

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
        serving = ServingPolicy(UniformPolicy())
    else:
        probe = Path(model.probe) if model.probe is not None else DEFAULT_PROBE
        # Priorities and caps reach it through request metadata (``priority``, ``max_budget``).
        policy = default_policy(probe=probe, encoder=encoder)
        serving = ServingPolicy(policy, policy)
    serving.gate = build_gate(model, serving)
    return serving


def gates_rounds(model: ModelConfig) -> bool:
    """Whether ``model``'s rounds are granted by a stream allocator: its procedure is
    ``sequential-best-of-k`` and its ``rounds_gate`` is ``"stream"``."""
    return model.procedure == "sequential-best-of-k" and model.rounds_gate == "stream"


def build_gate(model: ModelConfig, policy: ServingPolicy) -> StreamGate | None:
    """The stream allocator that grants ``model``'s sequential best-of-k rounds (``None``
    unless :func:`gates_rounds`).

    Every sequential request deposits ``average_budget`` units into the pool, so the units the
    rounds draw never average more than that; each round is granted when its value per unit
    (the chance it holds the first pass, from the request's posterior) clears a price re-solved
    from the requests in flight and about twice ``max_concurrency`` arrivals to come. The
    posterior starts from :class:`~howhard.policies.OnlinePrior` at the policy stage's probe
    logit (the population's mean logit without one), which learns from every round how far to
    trust the probe, per group.
    """
    if not gates_rounds(model):
        return None
    prior = OnlinePrior()
    mean_logit = prior.config.z_mean
    return StreamGate(
        StreamAllocator(average_budget=model.average_budget, horizon=2 * model.max_concurrency),
        prior,
        logit=lambda request: policy.logit(request, mean_logit),
        group=policy.group,
        min_budget=model.min_budget,
    )
