"""``OnlineAdaptivePolicy``: adaptive best-of-k that keeps learning from verifier feedback.

Per batch: the probe's calibrated logit and standardised features of each prompt → a group key
(the caller's ``metadata[group_field]`` and/or an automatic feature cluster,
:mod:`.grouping`) → posterior-expected marginals from the probe's marginals map
(:class:`~howhard.probes.GroupPosterior`) → the calibration safeguard's shrinkage toward the
population row (:mod:`.safeguard`) → the stream price and the exact allocator (:mod:`.price`).
After each request, ``observe`` adds its verified successes to its group's posterior and to the
safeguard's record.

Why: a probe's one-shot estimate does not transfer to task families it never saw (served on them,
the plug-in λ̂(1-λ̂)^(j-1) lost to uniform at every B from 3 to 15); the posterior starts from a
prior fitted on cross-fitted logits (conservative on new traffic), learns each group's offset
within a few requests, learns how far to trust the probe (β ≥ 0) and falls back to uniform when
the probe is uninformative or anti-correlated.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from pydantic import Field

from howhard.config import _Config
from howhard.errors import ConfigError, PolicyError
from howhard.policies.grouping import FeatureClusters
from howhard.policies.online import allocate
from howhard.policies.price import StreamPrice
from howhard.policies.safeguard import CalibrationSafeguard
from howhard.probes.marginals_map import BetaMarginalsMap
from howhard.probes.posterior import GroupPosterior
from howhard.types import BudgetBounds, Feedback, Request

__all__ = ["AdaptiveConfig", "OnlineAdaptivePolicy", "ProbeReader"]

FloatArray = npt.NDArray[np.float64]


@runtime_checkable
class ProbeReader(Protocol):
    """What the policy reads from a probe: calibrated logits and standardised input features.

    :class:`howhard.probes.ProbePredictor` implements it for MLP λ probes.
    """

    async def read(self, requests: Sequence[Request]) -> tuple[FloatArray, FloatArray]:
        """``(logits (n,), features (n, d))`` for the requests, in order."""
        ...


class AdaptiveConfig(_Config):
    """Settings of :class:`OnlineAdaptivePolicy` (defaults: measured on held-out families)."""

    min_budget: int = Field(
        default=1,
        ge=0,
        le=4096,
        description="Units every request gets (1: every request is answered; 0 opts into "
        "abstention for hopeless requests). The scheduler's own min_budget wins if larger.",
    )
    average_budget: float | None = Field(
        default=None,
        gt=0.0,
        description="Units per request on average when called without bounds (a scheduler "
        "always passes its own).",
    )
    max_budget: int = Field(
        default=16, ge=1, le=4096, description="Columns predicted when called without bounds."
    )
    group_field: str | None = Field(
        default="group",
        description="Request metadata field holding the caller's group key (a template, tool "
        "or task name); None: ignore callers' keys.",
    )
    priority_field: str | None = Field(
        default="priority",
        description="Request metadata field holding a positive weight on the request's "
        "predicted gains (None: ignore).",
    )
    cap_field: str | None = Field(
        default="max_budget",
        description="Request metadata field holding a per-request cap on units (None: ignore).",
    )
    auto_groups: bool = Field(
        default=True, description="Split groups further by clusters of the probe's features."
    )
    cluster_threshold: float = Field(
        default=0.93, ge=-1.0, le=1.0, description="Cosine similarity to join a feature cluster."
    )
    max_clusters: int = Field(default=1024, ge=1, description="Most feature clusters kept.")
    max_groups: int = Field(
        default=4096, ge=1, description="Most group posteriors kept (least recently used go)."
    )
    learn: bool = Field(default=True, description="Update the posterior from feedback.")
    price: bool = Field(
        default=True, description="Price units on the recent stream (small batches adapt too)."
    )
    price_window: int = Field(default=256, ge=1, description="Batches the price is fitted on.")
    price_horizon: float = Field(
        default=64.0, gt=0.0, description="Requests over which banked carry is spent back."
    )
    safeguard: Literal["slope", "none"] = Field(
        default="slope",
        description="'slope': shrink toward uniform by the recalibration slope; 'none': never.",
    )
    safeguard_window: int = Field(
        default=512, ge=1, description="Served outcomes the calibration is measured on."
    )
    safeguard_min_obs: int = Field(default=64, ge=0, description="No shrinking before this many.")
    slope_prior_sd: float = Field(
        default=0.3, gt=0.0, description="Prior sd of the recalibration slope around 1."
    )
    max_pending: int = Field(
        default=65_536, ge=1, description="Allocated requests remembered until their feedback."
    )


class OnlineAdaptivePolicy:
    """Probe + marginals map + online posterior + safeguard + stream price + exact allocator.

    ``allocate`` is the scheduler's policy call; ``observe`` its feedback hook (the scheduler
    calls it after each request resolves). One instance per scheduler: the state is the
    stream's. See the module docstring for the steps.
    """

    def __init__(
        self,
        probe: ProbeReader,
        marginals_map: BetaMarginalsMap,
        config: AdaptiveConfig | None = None,
    ) -> None:
        if not isinstance(probe, ProbeReader):
            raise ConfigError(
                f"probe must have async read(requests) -> (logits, features), got "
                f"{type(probe).__name__}; use howhard.probes.ProbePredictor"
            )
        self.probe = probe
        self.marginals_map = marginals_map
        self.config = c = config or AdaptiveConfig()
        self.posterior = GroupPosterior(marginals_map, max_groups=c.max_groups)
        self.clusters = FeatureClusters(threshold=c.cluster_threshold, max_clusters=c.max_clusters)
        self.stream_price = (
            StreamPrice(window=c.price_window, horizon=c.price_horizon) if c.price else None
        )
        self.safeguard = CalibrationSafeguard(
            enabled=c.safeguard == "slope",
            window=c.safeguard_window,
            min_obs=c.safeguard_min_obs,
            slope_sd=c.slope_prior_sd,
        )
        # request id -> (logit, group key, predicted row): what observe needs, until it comes.
        self._pending: OrderedDict[str, tuple[float, Hashable, FloatArray]] = OrderedDict()
        self._waiting: list[tuple[float, Hashable, int, int]] = []  # feedback not yet learned
        self.predictions: OrderedDict[str, float] = OrderedDict()
        """Predicted single-sample success of the last ``max_pending`` allocated requests."""

    # ------------------------------------------------------------------ allocation

    def group_keys(self, requests: Sequence[Request], features: FloatArray) -> list[Hashable]:
        """Each request's posterior group: caller key and/or feature cluster (``"*"``: none)."""
        field = self.config.group_field
        caller = [
            request.metadata.get(field) if field is not None else None for request in requests
        ]
        if not self.config.auto_groups:
            return [("*" if key is None else str(key)) for key in caller]
        clusters = self.clusters.assign(features)
        return [
            f"c{c}" if key is None else f"{key}|c{c}"
            for key, c in zip(caller, clusters, strict=True)
        ]

    async def allocate(
        self,
        requests: Sequence[Request],
        total_budget: int,
        bounds: BudgetBounds | None = None,
    ) -> list[int]:
        """Budgets for one batch (see the module docstring)."""
        n = len(requests)
        if n == 0:
            return []
        self._learn()
        logits, features = await self.probe.read(requests)
        logits = np.asarray(logits, dtype=np.float64)
        features = np.asarray(features, dtype=np.float64)
        if logits.shape != (n,) or features.ndim != 2 or len(features) != n:
            raise PolicyError(
                f"{type(self.probe).__name__}.read returned logits {logits.shape} and features "
                f"{features.shape} for {n} requests; return (n,) and (n, d)"
            )
        keys = self.group_keys(requests, features)
        width = bounds.max_budget if bounds is not None else self.config.max_budget
        average = bounds.average_budget if bounds is not None else self.config.average_budget
        if average is None:
            raise PolicyError(
                "OnlineAdaptivePolicy called without bounds needs AdaptiveConfig(average_budget=)"
            )
        floor = max(self.config.min_budget, bounds.min_budget if bounds is not None else 0)
        floor = min(floor, width, total_budget // n)
        rows = self.posterior.predict(logits, keys, width)
        served = self._per_request(requests, self.safeguard.apply(rows))
        if self.stream_price is not None:
            budgets = self.stream_price.allocate(
                served, total_budget, average_budget=float(average), min_budget=floor
            )
        else:
            budgets = allocate(served, total_budget, min_budget=floor)
        for i, request in enumerate(requests):
            self._pending[request.id] = (float(logits[i]), keys[i], rows[i])
            self.predictions[request.id] = float(rows[i, 0])
        for kept in (self._pending, self.predictions):
            while len(kept) > self.config.max_pending:
                kept.popitem(last=False)
        return [int(b) for b in budgets]

    def _per_request(self, requests: Sequence[Request], rows: FloatArray) -> FloatArray:
        """Each request's priority weight and unit cap, read from its metadata."""
        weighted: FloatArray | None = None
        for i, request in enumerate(requests):
            metadata = request.metadata
            priority = metadata.get(self.config.priority_field or "") if metadata else None
            cap = metadata.get(self.config.cap_field or "") if metadata else None
            if priority is None and cap is None:
                continue
            if weighted is None:
                weighted = rows.copy()
            if priority is not None:
                weighted[i] *= float(priority)
            if cap is not None:
                weighted[i, int(cap) :] = 0.0  # units past the cap are worth nothing
        return rows if weighted is None else weighted

    def predicted_success(self, request_id: str) -> float | None:
        """The predicted single-sample success of a recently allocated request."""
        return self.predictions.get(request_id)

    def reading(self, request_id: str) -> tuple[float, str] | None:
        """The probe's calibrated logit and the group key of an allocated request whose
        feedback has not come yet (``None`` once it has, or for a request never allocated).

        What a sequential request's round allocator reads for its prior
        (:class:`~howhard.policies.StreamGate`'s ``logit=`` and ``group=``).
        """
        pending = self._pending.get(request_id)
        return None if pending is None else (pending[0], str(pending[1]))

    # ------------------------------------------------------------------ feedback

    def observe(self, feedback: Feedback) -> None:
        """Learn from one served request: its group's posterior and the safeguard's record.

        Requests without a verdict (``successes is None``) or without samples teach nothing.
        """
        pending = self._pending.pop(feedback.request.id, None)
        if pending is None or feedback.successes is None or feedback.samples < 1:
            return
        logit, key, row = pending
        samples = min(int(feedback.samples), len(row))
        successes = min(int(feedback.successes), samples)
        # The unshrunk prediction: recording the shrunk one would make shrinking feed on itself.
        self.safeguard.record([float(row[:samples].sum())], [successes > 0])
        if self.config.learn:
            self._waiting.append((logit, key, samples, successes))

    def _learn(self) -> None:
        """Add the feedback received since the last batch to the posterior (one vector call)."""
        if not self._waiting:
            return
        logits, keys, samples, successes = zip(*self._waiting, strict=True)
        self._waiting = []
        self.posterior.observe(np.asarray(logits), list(keys), samples, successes)

    # ------------------------------------------------------------------ observability

    def stats(self) -> dict[str, float]:
        """Posterior means, calibration of the served predictions, shrinkage and price."""
        self._learn()
        gamma0, gamma1 = self.safeguard.recalibration
        return {
            "observations": float(self.posterior.observations),
            "groups": float(self.posterior.groups),
            "clusters": float(self.clusters.clusters),
            **self.posterior.summary(),
            "calibration_error": self.safeguard.calibration_error(),
            "recalibration_intercept": gamma0,
            "recalibration_slope": gamma1,
            "shrink": self.safeguard.shrink,
            "price": self.stream_price.price if self.stream_price is not None else 0.0,
        }

    async def aclose(self) -> None:
        """Close the probe's encoder, if it owns one."""
        close = getattr(self.probe, "aclose", None)
        if close is not None:
            await close()
