"""The offline fit of a :class:`BetaMarginalsMap` prior from collected samples.

Every training request is one observation (``b = m`` samples, ``k = s`` successes) in its
group (its task family); with flat priors on ``(a, β)`` the grid posterior gives the prior
centre ``(a0, β0)``, the between-group spread (``tau_prior``) and the population of group
shapes. The logits must be *cross-fitted*: each family scored by a probe trained without it,
so that the fitted prior describes traffic from families the probe never saw (on the 13-family
benchmark: ``β0 ≈ 0.5``, a family's offset spread ``τ ≈ 1``). Fitted on in-distribution logits
the same fit says ``β0 ≈ 1, τ ≈ 0.25``: the overconfident prior that fails on new families.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError
from howhard.probes.marginals_map import BetaMarginalsMap, check_logits
from howhard.probes.posterior import GroupPosterior

__all__ = ["fit_marginals_map"]


def fit_marginals_map(
    logits: npt.ArrayLike,
    groups: Sequence[str],
    successes: npt.ArrayLike,
    samples: npt.ArrayLike,
    *,
    base: BetaMarginalsMap | None = None,
    s_a: float = 1.0,
    s_beta: float = 0.5,
    smooth: float = 0.05,
    fitted_on: dict[str, Any] | None = None,
) -> BetaMarginalsMap:
    """The map whose prior is the posterior of ``base``'s model on this data (flat priors).

    Args:
        logits: ``(n,)`` calibrated probe logits, cross-fitted by group.
        groups: ``n`` group names (task families).
        successes: ``(n,)`` verified samples per request; ``samples``: ``(n,)`` samples drawn.
        base: grids to fit on (default: :class:`BetaMarginalsMap`'s).
        s_a, s_beta: prior sds of the served map around the fitted ``a0``/``β0``.
        smooth: weight of a uniform mixture added to the fitted ``tau_prior`` (no zero weights).
        fitted_on: metadata stored in the map.

    ``a0`` is rounded to a quarter step so the served grid stays on round values; the shape
    prior stays uniform (the fitted population of group shapes measured no better).
    """
    z = check_logits(logits)
    if not (len(groups) == len(z) == np.size(successes) == np.size(samples)):
        raise ConfigError("fit_marginals_map needs one group, success and sample count per logit")
    base = base or BetaMarginalsMap()
    flat = BetaMarginalsMap(
        **{
            **base.model_dump(),
            "s_a": 100.0,
            "s_beta": 100.0,
            "shape_prior": None,
            "tau_prior": None,
        }
    )
    posterior = GroupPosterior(flat, max_groups=max(len(set(groups)), 1))
    posterior.observe(z, list(groups), samples, successes)
    shared = posterior.shared_posterior()
    a_weights, b_weights, t_weights = shared.sum((1, 2)), shared.sum((0, 2)), shared.sum((0, 1))
    t_weights = (1 - smooth) * t_weights + smooth / len(t_weights)
    a0 = float((a_weights * posterior.a).sum())
    beta0 = float((b_weights * posterior.beta).sum())
    meta = {
        "requests": len(z),
        "groups": len(set(groups)),
        "a0_fitted": round(a0, 4),
        "beta0_fitted": round(beta0, 4),
        **(fitted_on or {}),
    }
    return BetaMarginalsMap(
        **{
            **base.model_dump(),
            "a0": round(a0 * 4) / 4,
            "beta0": round(beta0, 4),
            "s_a": s_a,
            "s_beta": s_beta,
            "tau_prior": tuple(round(float(x), 6) for x in t_weights),
            "shape_prior": None,
            "fitted_on": meta,
        }
    )
