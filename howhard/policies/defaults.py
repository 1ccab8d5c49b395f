"""``default_policy()``: the adaptive policy ``howhard demo`` and ``howhard serve`` run.

One call builds exactly what is served and evaluated: the shipped λ probe, the encoder its
checkpoint records, the marginals map fitted with it, and :class:`OnlineAdaptivePolicy` with the
defaults measured on held-out task families (every request answered, feedback learned online,
the calibration safeguard, the stream price).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from howhard.policies.online_adaptive import AdaptiveConfig, OnlineAdaptivePolicy
from howhard.probes.marginals_map import BetaMarginalsMap

if TYPE_CHECKING:
    from howhard.backends.base import Encoder

__all__ = ["SHIPPED_PROBE", "default_policy"]

SHIPPED_PROBE = Path(__file__).resolve().parent.parent / "assets" / "lambda-probe"
"""The λ probe shipped with the package (with its marginals map)."""

log = structlog.get_logger("howhard.policies")


def default_policy(
    *,
    probe: str | os.PathLike[str] | None = None,
    encoder: Encoder | None = None,
    **options: Any,
) -> OnlineAdaptivePolicy:
    """The default adaptive policy: probe + marginals map + online posterior.

    Args:
        probe: a λ probe checkpoint folder (default: the shipped one).
        encoder: the encoder its features come from (default: the one its checkpoint records,
            built on first use of the model).
        **options: :class:`AdaptiveConfig` fields, e.g. ``min_budget=0`` to allow abstention
            or ``group_field="task"``.

    A checkpoint without a marginals map (trained before maps existed) gets the default map
    (trust in the probe 1, no fitted prior), with a warning.
    """
    # The one place policies build a probe predictor (it reaches the backend registry for the
    # checkpoint's encoder); everything else receives its predictor.
    from howhard.probes.predictor import ProbePredictor

    path = SHIPPED_PROBE if probe is None else Path(probe)
    predictor = ProbePredictor.load(path, encoder=encoder)
    marginals_map = predictor.marginals_map
    if marginals_map is None:
        log.warning(
            "probe_without_marginals_map",
            probe=str(path),
            fix="refit it with scripts/fit_marginals_map.py",
        )
        marginals_map = BetaMarginalsMap(max_budget=predictor.max_budget)
    return OnlineAdaptivePolicy(predictor, marginals_map, AdaptiveConfig(**options))
