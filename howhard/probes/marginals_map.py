"""The marginals map: how a probe's logit becomes the marginal rewards a policy allocates with.

A λ probe's plug-in rows ``λ̂(1-λ̂)^(j-1)`` assume its estimate is exact. On traffic it never saw
it is not (on families left out of training its Spearman fell from 0.77 to 0.36 and adaptive
allocation lost to uniform), so the served rows are *posterior-expected* marginals under a
hierarchical model instead (request ``i`` in group ``g``, calibrated probe logit ``z_i``)::

    μ_i = sigmoid(a + δ_g + β·z_i)          a: stream shift, β ≥ 0: how far the probe is trusted
    λ_i ~ Beta(α_g, α_g·(1-μ_i)/μ_i)         mean μ_i, group shape α_g
    k_i ~ Binomial(b_i, λ_i)                 verifier feedback: k successes among b samples
    δ_g ~ N(0, τ²), α_g ~ π_α, a ~ N(a0, s_a²), β ~ N(β0, s_β²)·1[β ≥ 0], τ ~ π_τ

    Δ_ij = E[λ_i (1-λ_i)^(j-1)] = E[F_(j-1)] - E[F_j],   F_j = E[(1-λ)^j] = Π_{t<j} (q+t)/(α+q+t)

:class:`BetaMarginalsMap` holds the grids and the prior (fitted offline on cross-fitted logits,
:mod:`howhard.probes.map_fit`) and is saved in the probe checkpoint's ``probe.json`` under
``marginals_map``; :class:`~howhard.probes.posterior.GroupPosterior` does the inference. The
Beta moments and the Beta-binomial likelihood are exact and need numpy only: counts are
integers, so every log-gamma difference is a finite sum of logarithms.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from howhard.config import _Config
from howhard.errors import CheckpointError, ConfigError

__all__ = [
    "BetaMarginalsMap",
    "beta_binomial_loglik",
    "beta_fail_moments",
    "beta_shapes",
    "check_logits",
]

FloatArray = npt.NDArray[np.float64]

_BETA_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
_SHAPE_GRID = (0.4, 0.7, 1.0, 1.5, 2.5, 5.0, 10.0)
_TAU_GRID = (0.25, 0.5, 1.0, 2.0)


class BetaMarginalsMap(_Config):
    """Grids and prior of the hierarchical Beta model that maps probe logits to marginals.

    Frozen and JSON-serialisable (``model_dump()`` is what the checkpoint stores). The defaults
    of ``a0``, ``beta0``, ``shape_prior`` and ``tau_prior`` are placeholders; a checkpoint
    carries the values fitted by :func:`howhard.probes.map_fit.fit_marginals_map`.
    """

    dispersion: Literal["alpha", "phi"] = Field(
        default="alpha",
        description="'alpha': λ ~ Beta(α, α(1-μ)/μ) (constant shape); 'phi': Beta(μφ, (1-μ)φ) "
        "(constant precision; measured worse on low-λ questions).",
    )
    a0: float = Field(default=0.0, description="Prior mean of the stream shift a (logit scale).")
    s_a: float = Field(default=1.0, gt=0.0, description="Prior sd of the stream shift a.")
    beta0: float = Field(default=1.0, description="Prior mean of the probe's weight β.")
    s_beta: float = Field(default=0.5, gt=0.0, description="Prior sd of β (β on the grid, ≥ 0).")
    step: float = Field(
        default=0.5, gt=0.0, le=2.0, description="Grid step of a and δ on the logit scale."
    )
    a_half: int = Field(default=5, ge=0, le=40, description="a ∈ a0 + step·[-a_half, a_half].")
    delta_half: int = Field(
        default=8, ge=0, le=40, description="δ ∈ step·[-delta_half, delta_half]."
    )
    beta_grid: tuple[float, ...] = Field(
        default=_BETA_GRID, min_length=1, description="Values of the probe's weight β (≥ 0)."
    )
    shape_grid: tuple[float, ...] = Field(
        default=_SHAPE_GRID, min_length=1, description="Values of a group's Beta shape α (> 0)."
    )
    shape_prior: tuple[float, ...] | None = Field(
        default=None, description="Weights over shape_grid; None: uniform."
    )
    tau_grid: tuple[float, ...] = Field(
        default=_TAU_GRID, min_length=1, description="Values of the between-group sd τ of δ."
    )
    tau_prior: tuple[float, ...] | None = Field(
        default=None, description="Weights over tau_grid; None: uniform."
    )
    max_budget: int = Field(
        default=16, ge=1, le=4096, description="Columns of the served marginals by default."
    )
    prune: float = Field(
        default=1e-5,
        ge=0.0,
        lt=1.0,
        description="Grid points below this weight relative to the largest are skipped when "
        "predicting.",
    )
    fitted_on: dict[str, Any] = Field(
        default_factory=dict,
        description="Where the prior came from (data, probe, cross-fitting, sizes); metadata only.",
    )

    @model_validator(mode="after")
    def _check_grids(self) -> BetaMarginalsMap:
        if min(self.beta_grid) < 0:
            raise ValueError(f"beta_grid values must be >= 0, got {self.beta_grid}")
        if min(self.shape_grid) <= 0 or min(self.tau_grid) <= 0:
            raise ValueError("shape_grid and tau_grid values must be > 0")
        for name, prior, grid in (
            ("shape_prior", self.shape_prior, self.shape_grid),
            ("tau_prior", self.tau_prior, self.tau_grid),
        ):
            if prior is not None and (len(prior) != len(grid) or min(prior) < 0 or sum(prior) <= 0):
                raise ValueError(
                    f"{name} must hold {len(grid)} non-negative weights (one per grid value) "
                    f"with a positive sum, got {prior}"
                )
        return self

    @classmethod
    def from_checkpoint_config(cls, config: Any) -> BetaMarginalsMap | None:
        """The map stored in a probe's ``probe.json`` (``None`` when the checkpoint has none)."""
        stored = config.get("marginals_map") if hasattr(config, "get") else None
        if stored is None:
            return None
        try:
            return cls(**stored)
        except (ConfigError, TypeError) as exc:
            raise CheckpointError(f"probe.json marginals_map is invalid: {exc}") from exc


def beta_shapes(
    mu: npt.ArrayLike, shape: npt.ArrayLike, dispersion: str = "alpha"
) -> tuple[FloatArray, FloatArray]:
    """Beta parameters ``(p, q)`` with mean ``μ`` (broadcast).

    ``dispersion="alpha"`` holds ``p = shape`` (``q = shape·(1-μ)/μ``); ``"phi"`` holds the
    precision ``p + q = shape``.
    """
    m = np.clip(np.asarray(mu, dtype=np.float64), 1e-9, 1 - 1e-9)
    s = np.asarray(shape, dtype=np.float64)
    if dispersion == "alpha":
        p, q = np.broadcast_arrays(s + 0.0 * m, s * (1.0 - m) / m)
    else:
        p, q = np.broadcast_arrays(m * s, (1.0 - m) * s)
    return np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)


def beta_fail_moments(
    mu: npt.ArrayLike, shape: npt.ArrayLike, max_budget: int, dispersion: str = "alpha"
) -> FloatArray:
    """``F[..., j] = E[(1-λ)^j]``, ``j = 0..max_budget``, for ``λ ~ Beta(p, q)`` of mean ``μ``.

    ``Π_{t<j} (q + t)/(p + q + t)`` (exact). Shape: ``broadcast(mu, shape) + (max_budget + 1,)``.
    """
    p, q = beta_shapes(mu, shape, dispersion)
    out = np.empty((*p.shape, max_budget + 1))
    out[..., 0] = 1.0
    for t in range(max_budget):
        out[..., t + 1] = out[..., t] * (q + t) / (p + q + t)
    return out


def _log_rising(x: FloatArray, n: FloatArray, top: int) -> FloatArray:
    """``log Γ(x + n) - log Γ(x) = Σ_{t<n} log(x + t)`` for integer ``0 <= n <= top``."""
    total = np.zeros(np.broadcast_shapes(x.shape, n.shape))
    for t in range(top):
        total = total + np.where(n > t, np.log(x + t), 0.0)
    return total


def beta_binomial_loglik(
    k: npt.ArrayLike,
    b: npt.ArrayLike,
    mu: npt.ArrayLike,
    shape: npt.ArrayLike,
    dispersion: str = "alpha",
) -> FloatArray:
    """``log B(k + p, b - k + q) - log B(p, q)``: Beta-binomial log-likelihood without ``C(b, k)``.

    ``k`` successes among ``b`` samples (integers, broadcast against ``mu`` and ``shape``).
    """
    p, q = beta_shapes(mu, shape, dispersion)
    kk = np.asarray(k, dtype=np.float64)
    bb = np.asarray(b, dtype=np.float64)
    top = int(bb.max()) if bb.size else 0
    return (
        _log_rising(p, kk, top)
        + _log_rising(q, bb - kk, top)
        - _log_rising(p + q, bb + 0.0 * kk, top)
    )


def check_logits(z: npt.ArrayLike, what: str = "logits") -> FloatArray:
    """A finite ``(n,)`` float array, or ``ConfigError`` naming the problem."""
    array = np.asarray(z, dtype=np.float64)
    if array.ndim != 1 or not np.isfinite(array).all():
        raise ConfigError(f"{what} must be a finite 1-D array, got shape {array.shape}")
    return array
