"""Exact expected quality of self-consistency (majority vote) from sampled answers.

Self-consistency with budget ``k`` draws ``k`` samples, takes the most frequent answer (ties
broken uniformly at random; samples without an answer do not vote) and serves a reply with that
answer. Given ``m`` collected samples per question, its expected reward over all ``C(m, k)``
subsets of size ``k`` is computed exactly — no bootstrap noise — by a dynamic programme over the
answer groups, for every ``k`` at once.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["majority_vote_curve", "majority_vote_curves"]


def majority_vote_curve(
    answers: Sequence[Hashable | None], rewards: Sequence[float], max_budget: int | None = None
) -> npt.NDArray[np.float64]:
    """Expected reward of a majority vote over ``k`` of the samples, for ``k = 0 … max_budget``.

    ``answers[i]`` is sample ``i``'s canonical answer (``None`` if it gave none) and
    ``rewards[i]`` its reward. A winning answer is worth the mean reward of the samples that gave
    it. Returns shape ``(max_budget + 1,)``; entry 0 (no samples) is 0. ``max_budget`` defaults
    to, and may not exceed, ``m = len(answers)`` (subsets are drawn without replacement).
    """
    m = len(answers)
    if len(rewards) != m:
        raise ValueError(
            f"answers and rewards must have the same length, got {m} and {len(rewards)}"
        )
    k_max = m if max_budget is None else max_budget
    if not 0 <= k_max <= m:
        raise ValueError(
            f"max_budget must be in [0, {m}] (the number of samples), got {max_budget}"
        )
    groups: dict[Hashable, list[float]] = {}
    abstain = 0
    for answer, reward in zip(answers, rewards, strict=True):
        if answer is None:
            abstain += 1
        else:
            groups.setdefault(answer, []).append(float(reward))
    sizes = [len(v) for v in groups.values()]
    values = [sum(v) / len(v) for v in groups.values()]
    total = np.zeros(k_max + 1)
    for g, (n_g, value) in enumerate(zip(sizes, values, strict=True)):
        if value == 0.0:
            continue  # a winning wrong answer adds nothing
        others = [n for h, n in enumerate(sizes) if h != g]
        for c in range(1, n_g + 1):
            # ways[s, t]: subsets of size s of the other samples in which every other answer has
            # at most c votes and exactly t of them tie with c.
            ways = np.zeros((k_max + 1, len(others) + 2))
            ways[0, 0] = 1.0
            for n_h in others:
                ways = _add_group(ways, n_h, cap=c)
            ways = _add_free_group(ways, abstain)
            tie_share = 1.0 / (1.0 + np.arange(ways.shape[1]))
            wins = ways @ tie_share  # (k_max + 1,) weighted by the chance g wins the tie-break
            ks = np.arange(c, k_max + 1)
            total[ks] += value * math.comb(n_g, c) * wins[ks - c]
    subsets = np.array([math.comb(m, k) for k in range(k_max + 1)], dtype=np.float64)
    curve = total / subsets
    curve[0] = 0.0
    return curve


def _add_group(ways: npt.NDArray[np.float64], n_h: int, *, cap: int) -> npt.NDArray[np.float64]:
    """Convolve in a group of ``n_h`` samples contributing at most ``cap`` votes."""
    out = np.zeros_like(ways)
    size = ways.shape[0]
    for j in range(min(n_h, cap) + 1):
        if j >= size:
            break
        term = math.comb(n_h, j) * ways[: size - j]
        if j == cap:
            out[j:, 1:] += term[:, :-1]
        else:
            out[j:] += term
    return out


def _add_free_group(ways: npt.NDArray[np.float64], n: int) -> npt.NDArray[np.float64]:
    """Convolve in ``n`` samples that cast no vote (any number of them may be drawn)."""
    out = np.zeros_like(ways)
    size = ways.shape[0]
    for j in range(min(n, size - 1) + 1):
        out[j:] += math.comb(n, j) * ways[: size - j]
    return out


def majority_vote_curves(
    answers: Sequence[Sequence[Hashable | None]],
    rewards: npt.ArrayLike,
    max_budget: int,
) -> npt.NDArray[np.float64]:
    """``majority_vote_curve`` for every question: shape ``(n_questions, max_budget + 1)``."""
    reward_rows = np.asarray(rewards, dtype=np.float64)
    if reward_rows.ndim != 2 or reward_rows.shape[0] != len(answers):
        raise ValueError(
            f"rewards must have shape (n_questions, samples) = ({len(answers)}, m), "
            f"got {reward_rows.shape}"
        )
    return np.stack(
        [
            majority_vote_curve(list(a), list(r), max_budget)
            for a, r in zip(answers, reward_rows, strict=True)
        ]
    )
