"""What a probe's head predicts, and how that becomes the allocator's marginal rewards.

Three heads: ``lambda`` (single-sample success λ, for binary rewards), ``delta`` (the whole
vector of marginal rewards Δ, for real-valued rewards) and ``preference`` (routing:
``P(strong ≻ weak)``). Serving and evaluation turn any of them into ``(n, max_budget)``
marginals here, with numpy only.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError
from howhard.marginals import marginals_from_success_prob

__all__ = ["HEADS", "Head", "marginals_from_head"]

Head = Literal["lambda", "delta", "preference"]
"""What a probe predicts: success rate λ, the marginal-reward vector Δ, or routing preference."""

HEADS: tuple[Head, ...] = ("lambda", "delta", "preference")

FloatArray = npt.NDArray[np.float64]


def marginals_from_head(head: str, values: FloatArray, max_budget: int) -> FloatArray:
    """Turn a head's output into ``(n, max_budget)`` marginals for the allocator.

    ``lambda``: geometric rows ``λ(1-λ)^(j-1)``; ``delta``: the predicted vector (cut or
    zero-padded to ``max_budget``); ``preference``: one column, ``P(strong ≻ weak)``.
    """
    if head == "lambda":
        return marginals_from_success_prob(values, max_budget)
    if head == "delta":
        out = np.zeros((len(values), max_budget))
        width = min(max_budget, values.shape[1])
        out[:, :width] = values[:, :width]
        return out
    if max_budget != 1:
        raise ConfigError(
            f"a preference probe predicts one routing unit; max_budget must be 1, got {max_budget}"
        )
    result: FloatArray = values.reshape(-1, 1)
    return result
