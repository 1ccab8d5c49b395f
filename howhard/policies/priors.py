"""Where a sequential request's prior over λ comes from, and how feedback corrects it online.

The stream allocator (:mod:`howhard.policies.stream`) reads a request's prior through the small
:class:`PriorSource` protocol, so any calibrated difficulty model can feed it: a probe through
:class:`OnlinePrior` (the default, learning its own strength), a fixed fit
(:class:`FixedPrior`), or any estimate of a request's success probability with a strength
(:class:`EstimatePrior` over a :class:`SuccessEstimate`).

:class:`OnlinePrior` holds a small grid of hypotheses about how the probe relates to the traffic:

- strength κ ∈ [0, 1]: κ = 1 is the offline fit; κ = 0 ignores the probe (every request gets the
  population prior, the flat one); in between, the probe's slope is scaled by κ around the
  population mean and the lost spread is added back as noise, so each κ keeps the marginal;
- shift δ (probe-logit units): one group of the traffic is easier (δ > 0) or harder than the
  probe says; each group has its own, drawn from N(0, τ²);
- spread τ of the groups' shifts: small where the probe is calibrated family by family (its own
  training families), large where it is off by a different amount for each (families it never
  saw).

κ and τ are shared by the whole stream, δ belongs to a group. Every round's outcomes (passes,
failures) update the hypotheses' weights; a request's prior is the mixture over hypotheses, and
the version number tells active requests to re-base their posterior. So the prior's strength is
learned, and shrunk toward flat when feedback shows the probe is off, never fixed; and a group's
own shift is trusted only as far as the groups seen so far differ from one another. (Chosen on
the val split's streams, see :class:`OnlinePriorConfig`.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from pydantic import Field, field_validator

from howhard.config import _Config
from howhard.errors import ConfigError
from howhard.posterior import GRID, log_lik_counts, logsumexp, zero_inflated_logit_normal

__all__ = [
    "EstimatePrior",
    "FixedPrior",
    "OnlinePrior",
    "OnlinePriorConfig",
    "PriorFit",
    "PriorSource",
    "RequestInfo",
    "SuccessEstimate",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What a prior source may read about a request: its key, probe logit and group key."""

    key: str
    z: float
    """The difficulty probe's calibrated logit of the request's single-sample success."""
    group: str = "*"
    """A group the request belongs to (a task or template name), for per-group shifts."""


@runtime_checkable
class PriorSource(Protocol):
    """Gives each request its prior over λ and learns from the outcomes it reports."""

    @property
    def version(self) -> int:
        """Changes whenever priors change (active requests then re-base their posterior)."""
        ...

    def prior(self, info: RequestInfo) -> FloatArray:
        """``(162,)`` log-weights of the request's prior over ``howhard.posterior.GRID``."""
        ...

    def update(self, info: RequestInfo, passes: int, fails: int) -> None:
        """The request's outcomes so far (replacing what it reported before)."""
        ...

    def feedback(self, info: RequestInfo, passes: int, fails: int) -> None:
        """The request finished with these outcomes."""
        ...

    def tick(self) -> None:
        """Publish the evidence gathered since the last tick (may bump ``version``)."""
        ...


class PriorFit(_Config):
    """A zero-inflated logit-normal prior in the probe logit z, fitted offline.

    ``P(λ = 0 | z) = sigmoid(c0 + c1·z)``, otherwise ``logit λ ~ N(a0 + a1·z, sigma²)``.
    Defaults: fitted by maximum marginal likelihood of the val split's counts (16 samples per
    question, SmolLM2-135M, the shipped λ probe's calibrated logits).
    """

    a0: float = Field(default=-0.041, allow_inf_nan=False, description="Intercept of logit λ.")
    a1: float = Field(default=0.926, allow_inf_nan=False, description="Slope of logit λ in z.")
    sigma: float = Field(
        default=0.813, gt=0.0, allow_inf_nan=False, description="Spread of logit λ given z."
    )
    c0: float = Field(
        default=-3.29, allow_inf_nan=False, description="Intercept of the never-solved logit."
    )
    c1: float = Field(
        default=-0.80, allow_inf_nan=False, description="Slope of the never-solved logit in z."
    )

    def log_weights(self, z: npt.ArrayLike) -> FloatArray:
        """``(n, 162)`` prior log-weights for probe logits ``z`` ``(n,)``."""
        zz = np.atleast_1d(np.asarray(z, dtype=np.float64))
        return zero_inflated_logit_normal(
            self.a0 + self.a1 * zz, self.sigma, self.c0 + self.c1 * zz
        )


class OnlinePriorConfig(_Config):
    """The offline fit and the hypothesis grid :class:`OnlinePrior` learns over."""

    fit: PriorFit = Field(default_factory=PriorFit, description="The offline fit (κ = 1, δ = 0).")
    z_mean: float = Field(
        default=-1.461, allow_inf_nan=False, description="Mean probe logit on the fit set."
    )
    z_var: float = Field(
        default=2.133, ge=0.0, allow_inf_nan=False, description="Variance of z on the fit set."
    )
    kappas: tuple[float, ...] = Field(
        default=(0.0, 0.25, 0.5, 0.75, 1.0),
        min_length=1,
        description="Strengths of the probe the prior may take (0 = flat, 1 = offline fit).",
    )
    kappa_weights: tuple[float, ...] | None = Field(
        default=(0.1686, 0.246, 0.303, 0.2567, 0.0256),
        description="Starting weights over kappas (None: uniform); the default was fitted on "
        "leave-one-family-out predictions, tempered to the evidence of 20 requests.",
    )
    shifts: tuple[float, ...] = Field(
        default=tuple(float(x) for x in np.linspace(-3.0, 3.0, 13)),
        min_length=1,
        description="Shifts δ of the probe logit the traffic may have.",
    )
    shift_sds: tuple[float, ...] = Field(
        default=(0.1, 0.25, 0.5, 1.0, 2.0),
        min_length=1,
        description="Spreads τ the groups' shifts may have (δ ~ N(0, τ²)); one value fixes τ.",
    )
    shift_sd_weights: tuple[float, ...] | None = Field(
        default=None, description="Starting weights over shift_sds (None: uniform)."
    )
    learn: bool = Field(default=True, description="Learn from outcomes (False: a fixed prior).")
    per_group: bool = Field(
        default=True, description="Learn a shift and a strength per request group."
    )
    pool_requests: float | None = Field(
        default=None,
        ge=0.0,
        description="Most requests' worth of other groups' evidence on κ and τ a group takes "
        "(None: all of it, so κ and τ are the stream's; a number lets each group learn its own "
        "strength from its first requests, which cost 0.3 samples a question on the val "
        "split's in-distribution streams at 20).",
    )

    @field_validator("shift_sds")
    @classmethod
    def _positive_spreads(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not (0.0 < v < math.inf) for v in value):
            raise ValueError(f"shift_sds must be positive and finite, got {value}")
        return value

    @field_validator("kappa_weights", "shift_sd_weights")
    @classmethod
    def _usable_weights(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        # A NaN or negative weight would turn every request's prior into NaN, and all zeros
        # into a silent uniform: refuse them where the config is made.
        if value is not None and (
            any(not (0.0 <= w < math.inf) for w in value) or not any(w > 0 for w in value)
        ):
            raise ValueError(f"starting weights must be finite, >= 0 and not all 0, got {value}")
        return value


class OnlinePrior:
    """A probe prior whose strength and shift are learned from outcomes (module docstring).

    A request's own evidence is left out of the hypothesis weights its own prior uses, so
    nothing is counted twice; each group's strength is partially pooled with the others'.
    """

    def __init__(self, config: OnlinePriorConfig | None = None) -> None:
        self.config = cfg = config if config is not None else OnlinePriorConfig()
        k = np.asarray(cfg.kappas, dtype=np.float64)
        d = np.asarray(cfg.shifts, dtype=np.float64)
        t = np.asarray(cfg.shift_sds, dtype=np.float64)
        for name, weights, n in (
            ("kappa_weights", cfg.kappa_weights, len(k)),
            ("shift_sd_weights", cfg.shift_sd_weights, len(t)),
        ):
            if weights is not None and len(weights) != n:
                raise ConfigError(
                    f"{name} has {len(weights)} entries for {n} hypotheses; "
                    "give one weight each or None"
                )
        self._kappa, self._shift = np.meshgrid(k, d, indexing="ij")  # (K, D)
        self._log_prior_k = _log_weights(cfg.kappa_weights, len(k))
        self._log_prior_t = _log_weights(cfg.shift_sd_weights, len(t))
        lp_d = -0.5 * (d[None, :] / t[:, None]) ** 2
        self._log_prior_d = lp_d - logsumexp(lp_d, axis=1)[:, None]  # (T, D): δ given τ
        self._contrib: dict[str, FloatArray] = {}  # request → (K, D) log-lik of its evidence
        self._group_ll: dict[str, FloatArray] = {}  # group → (K, D) log-lik of its evidence
        self._group_n: dict[str, int] = {}
        self._evidence: dict[str, FloatArray] = {}  # group → (K, T) log Σ_δ P(δ | τ) L_g(κ, δ)
        self._total_evidence = np.zeros((len(k), len(t)))
        self._total_n = 0
        self._weights: dict[str, FloatArray] = {}
        self._dirty = False
        self._version = 0

    @property
    def version(self) -> int:
        """Bumped by :meth:`tick` when new evidence arrived."""
        return self._version

    def _hypotheses(self, z: float) -> FloatArray:
        """``(K·D, 162)`` prior weights of one request under every hypothesis."""
        fit, cfg = self.config.fit, self.config
        kappa = self._kappa.ravel()
        zeff = cfg.z_mean + kappa * (z - cfg.z_mean) + self._shift.ravel()
        scale = np.sqrt(fit.sigma**2 + np.maximum(1.0 - kappa**2, 0.0) * fit.a1**2 * cfg.z_var)
        log_w = zero_inflated_logit_normal(fit.a0 + fit.a1 * zeff, scale, fit.c0 + fit.c1 * zeff)
        result: FloatArray = np.exp(log_w)
        return result

    def _cached(self, info: RequestInfo) -> FloatArray:
        w = self._weights.get(info.key)
        if w is None:
            w = self._weights[info.key] = self._hypotheses(info.z)
        return w

    def _group(self, info: RequestInfo) -> str:
        return info.group if self.config.per_group else "*"

    def _log_mix(self, info: RequestInfo) -> FloatArray:
        """``(K, D)`` hypothesis log-weights for this request (its own evidence left out)."""
        key = self._group(info)
        own = self._group_ll.get(key)
        mine = self._contrib.get(info.key)
        if own is not None and mine is not None:
            own = own - mine
        return self._group_mix(key, own)

    def _group_mix(self, key: str, own: FloatArray | None) -> FloatArray:
        """``(K, D)`` log-weights for group ``key`` with its own evidence ``own``, τ summed out;
        the other groups' evidence on (κ, τ) pooled up to ``pool_requests`` requests' worth."""
        other = self._total_evidence - self._evidence.get(key, 0.0)
        if self.config.pool_requests is not None:
            n_other = self._total_n - self._group_n.get(key, 0)
            other = other * min(1.0, self.config.pool_requests / max(n_other, 1))
        joint = (
            self._log_prior_k[:, None, None]
            + self._log_prior_t[None, :, None]
            + other[:, :, None]
            + self._log_prior_d[None, :, :]
        )
        if own is not None:
            joint = joint + own[:, None, :]
        out = logsumexp(joint, axis=1)
        result: FloatArray = out - logsumexp(out)
        return result

    def prior(self, info: RequestInfo) -> FloatArray:
        """``(162,)`` log-weights: the mixture over hypotheses at their current weights."""
        mix = np.exp(self._log_mix(info).ravel())
        with np.errstate(divide="ignore"):
            result: FloatArray = np.log(mix @ self._cached(info))
        return result

    def update(self, info: RequestInfo, passes: int, fails: int) -> None:
        """The request's outcomes so far (replacing its earlier report)."""
        if not self.config.learn or passes + fails == 0:
            return
        lik = np.exp(log_lik_counts([passes], [fails])[0])
        with np.errstate(divide="ignore"):
            ll = np.log(self._cached(info) @ lik).reshape(self._kappa.shape)
        key = self._group(info)
        old = self._contrib.get(info.key)
        g = self._group_ll.get(key, np.zeros(self._kappa.shape)) + ll
        if old is None:
            self._group_n[key] = self._group_n.get(key, 0) + 1
            self._total_n += 1
        else:
            g = g - old
        self._contrib[info.key] = ll
        self._group_ll[key] = g
        ev = self.group_evidence(g)
        self._total_evidence = self._total_evidence - self._evidence.get(key, 0.0) + ev
        self._evidence[key] = ev
        self._dirty = True

    def group_evidence(self, log_lik: FloatArray) -> FloatArray:
        """``(K, T)``: a group's evidence ``log Σ_δ P(δ | τ) L(κ, δ)`` for each strength and
        spread, from the ``(K, D)`` log-likelihood of its outcomes."""
        result: FloatArray = logsumexp(self._log_prior_d[None, :, :] + log_lik[:, None, :], axis=2)
        return result

    def spread_log_prior(self) -> FloatArray:
        """``(T,)`` the starting log-weights over ``shift_sds``."""
        return self._log_prior_t

    def feedback(self, info: RequestInfo, passes: int, fails: int) -> None:
        """The request finished: its final outcomes count, its cached weights are dropped."""
        self.update(info, passes, fails)
        self._weights.pop(info.key, None)
        # Its evidence stays in its group's sum; the per-request record only served to replace
        # an earlier report and to leave its own evidence out of its own prior. Dropping it
        # keeps a long-running stream's memory bounded by the requests in flight.
        self._contrib.pop(info.key, None)

    def tick(self) -> None:
        """Publish the evidence gathered since the last tick."""
        if self._dirty:
            self._version += 1
            self._dirty = False

    def _stream(self) -> FloatArray:
        """``(K, T)`` posterior weights of the stream-wide hypotheses."""
        lw = self._log_prior_k[:, None] + self._log_prior_t[None, :] + self._total_evidence
        result: FloatArray = np.exp(lw - logsumexp(lw))
        return result

    def strength(self) -> float:
        """The posterior mean of κ over the whole stream (for stats)."""
        return float(self._stream().sum(axis=1) @ np.asarray(self.config.kappas))

    def shift_spread(self) -> float:
        """The posterior mean of τ, how far the groups' shifts spread (for stats)."""
        return float(self._stream().sum(axis=0) @ np.asarray(self.config.shift_sds))

    def shifts(self) -> Mapping[str, float]:
        """Each group's posterior mean shift δ (for stats)."""
        out = {}
        for key, g in self._group_ll.items():
            w = np.exp(self._group_mix(key, g))
            out[key] = float((w * self._shift).sum())
        return out


def _log_weights(weights: tuple[float, ...] | None, n: int) -> FloatArray:
    """Normalised log-weights (uniform when ``weights`` is None)."""
    lw = (
        np.zeros(n)
        if weights is None
        else np.log(np.maximum(np.asarray(weights, dtype=np.float64), 1e-300))
    )
    result: FloatArray = lw - logsumexp(lw)
    return result


class FixedPrior:
    """A prior that never learns: the offline fit at full strength, or one prior for all
    (``flat=True``: the fit at the population's mean logit with its spread, i.e. κ = 0)."""

    version = 0

    def __init__(self, config: OnlinePriorConfig | None = None, *, flat: bool = False) -> None:
        cfg = config if config is not None else OnlinePriorConfig()
        fixed = cfg.model_copy(
            update={"kappas": (0.0 if flat else 1.0,), "kappa_weights": None, "shifts": (0.0,)}
        )
        self._source = OnlinePrior(fixed.model_copy(update={"learn": False}))

    def prior(self, info: RequestInfo) -> FloatArray:
        """The fit's log-weights for the request's logit (or the population's, when flat)."""
        return self._source.prior(info)

    def update(self, info: RequestInfo, passes: int, fails: int) -> None:
        """Ignored: a fixed prior does not learn."""

    def feedback(self, info: RequestInfo, passes: int, fails: int) -> None:
        """Ignored: a fixed prior does not learn."""

    def tick(self) -> None:
        """Nothing to publish."""


@runtime_checkable
class SuccessEstimate(Protocol):
    """Any model of a request's single-sample success: a mean and a strength (pseudo-samples).

    What a calibrated, recalibrating difficulty policy exposes to the stream allocator.
    """

    def estimate(self, info: RequestInfo) -> tuple[float, float]:
        """``(mean λ in (0, 1), strength > 0)``: the prior Beta(s·mean, s·(1 - mean))."""
        ...


_LOG_L = np.log(np.maximum(GRID, 1e-300))
_LOG_1L = np.log(np.maximum(1.0 - GRID, 1e-300))
_WIDTH = np.log(np.gradient(GRID))


class EstimatePrior:
    """A :class:`PriorSource` over any :class:`SuccessEstimate` (a Beta prior on the grid).

    The estimate learns on its own (``learn`` is forwarded when it has ``observe``); this
    adapter only turns its answer into grid weights and bumps the version on every tick
    with new outcomes.
    """

    def __init__(self, estimate: SuccessEstimate) -> None:
        self._estimate = estimate
        self._version = 0
        self._dirty = False

    @property
    def version(self) -> int:
        """Bumped by :meth:`tick` after new outcomes."""
        return self._version

    def prior(self, info: RequestInfo) -> FloatArray:
        """Beta(s·mean, s·(1 - mean)) on the grid's interior points."""
        mean, strength = self._estimate.estimate(info)
        if not (0.0 < mean < 1.0) or not strength > 0.0:
            raise ConfigError(
                f"{type(self._estimate).__name__}.estimate returned ({mean!r}, {strength!r}); "
                "return a mean in (0, 1) and a strength > 0"
            )
        a, b = strength * mean, strength * (1.0 - mean)
        log_w = (a - 1.0) * _LOG_L + (b - 1.0) * _LOG_1L + _WIDTH
        log_w[0] = log_w[-1] = -np.inf
        result: FloatArray = log_w - logsumexp(log_w)
        return result

    def update(self, info: RequestInfo, passes: int, fails: int) -> None:
        """Forward to the estimate's ``observe`` if it has one."""
        observe = getattr(self._estimate, "observe", None)
        if observe is not None:
            observe(info, passes, fails)
            self._dirty = True

    def feedback(self, info: RequestInfo, passes: int, fails: int) -> None:
        """The request's final outcomes, forwarded like :meth:`update`."""
        self.update(info, passes, fails)

    def tick(self) -> None:
        """Publish new outcomes."""
        if self._dirty:
            self._version += 1
            self._dirty = False
