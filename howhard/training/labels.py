"""Training labels for difficulty probes, computed from collected rewards.

Three heads, three kinds of label (the maths lives in :mod:`howhard.marginals`; this
module only shapes datasets into it):

- ``lambda``: binary rewards → the single-sample success rate ``λ = c/m`` (soft label for the
  cross-entropy of the paper's Eq. 7); the expected best-of-j curve is the unbiased
  ``q_j = 1 - C(m-c, j)/C(m, j)``.
- ``delta``: real-valued rewards → the vector of exact expected best-of-j increments
  ``Δ_j = E[max of j] - E[max of j-1]`` (MSE, Eq. 6).
- ``preference``: a weak/strong pair collected on the same requests → ``P(strong ≻ weak)``
  (Eq. 8), the routing label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError
from howhard.marginals import marginals_from_rewards, preference_prob, success_rate
from howhard.probes.heads import HEADS, Head
from howhard.training.dataset import Dataset

__all__ = [
    "HEADS",
    "Head",
    "Labels",
    "best_of_curve",
    "labels_for",
    "success_rate",
]

FloatArray = npt.NDArray[np.float64]


def _rewards(rewards: npt.ArrayLike, name: str = "rewards") -> FloatArray:
    array = np.asarray(rewards, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] < 1:
        raise ConfigError(f"{name} must have shape (n, m) with m >= 1, got {array.shape}")
    if not np.isfinite(array).all():
        raise ConfigError(
            f"{name} contains NaN or inf (requests collected with different sample counts?); "
            "collect the same number of samples for every request"
        )
    return array


def best_of_curve(rewards: npt.ArrayLike, max_budget: int) -> FloatArray:
    """Expected best-of-j reward ``q_j`` for ``j = 1..max_budget`` from ``(n, m)`` rewards.

    For binary rewards with ``c`` successes this is the unbiased ``1 - C(m-c, j)/C(m, j)``
    (without replacement, so ``max_budget <= m``). Shape ``(n, max_budget)``.
    """
    result: FloatArray = np.cumsum(marginals_from_rewards(_rewards(rewards), max_budget), axis=1)
    return result


@dataclass(frozen=True, slots=True)
class Labels:
    """Targets for one head, aligned with ``ids``.

    ``targets`` is ``(n,)`` for the ``lambda`` and ``preference`` heads (probabilities) and
    ``(n, max_budget)`` for the ``delta`` head.
    """

    head: Head
    ids: tuple[str, ...]
    targets: FloatArray
    max_budget: int
    """Columns of the marginals a predictor built on this head returns."""


def labels_for(
    dataset: Dataset,
    head: Head,
    *,
    max_budget: int | None = None,
    weak: Dataset | None = None,
) -> Labels:
    """Compute ``head``'s labels for every request of ``dataset``.

    ``max_budget`` defaults to the dataset's sample count ``m`` (for ``delta`` it must not exceed
    it). The ``preference`` head treats ``dataset`` as the strong procedure and needs ``weak``,
    collected on the same request ids; rows follow ``dataset``'s order.
    """
    if head not in HEADS:
        raise ConfigError(f"head must be one of {HEADS}, got {head!r}")
    rewards = _rewards(dataset.rewards)
    budget = rewards.shape[1] if max_budget is None else max_budget
    if head == "lambda":
        return Labels(head, dataset.ids, success_rate(rewards), budget)
    if head == "delta":
        return Labels(head, dataset.ids, marginals_from_rewards(rewards, budget), budget)
    if weak is None:
        raise ConfigError(
            "head='preference' needs the weak procedure's dataset (weak=...), collected on the "
            "same requests"
        )
    weak_rows = weak.index()
    missing = [i for i in dataset.ids if i not in weak_rows]
    if missing:
        raise ConfigError(
            f"{len(missing)} request ids of the strong dataset are missing from the weak one "
            f"(first: {missing[0]!r}); collect both on the same requests"
        )
    order: Sequence[int] = [weak_rows[i] for i in dataset.ids]
    weak_rewards = _rewards(weak.rewards[np.asarray(order, dtype=np.int64)], "weak rewards")
    return Labels(head, dataset.ids, preference_prob(rewards, weak_rewards), 1)
