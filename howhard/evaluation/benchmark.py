"""The benchmark's curves: expected quality vs compute for each method, exactly.

Every number is an exact expectation over the collected samples: best-of-k quality from the
order statistics of each question's rewards, self-consistency from the exact majority-vote curve
(:mod:`howhard.evaluation.consistency`). Nothing is resampled, so the curves carry no bootstrap
noise. Predictions come from probes trained on the train split and calibrated on val; the val
split also fits the offline allocator and the self-consistency difficulty table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from howhard.evaluation.consistency import majority_vote_curves
from howhard.evaluation.curves import (
    Curve,
    offline_curve,
    online_curve,
    oracle_curve,
    uniform_curve,
)
from howhard.evaluation.data import SplitData
from howhard.marginals import marginals_from_rewards, marginals_from_success_prob
from howhard.policies.online import allocate

__all__ = [
    "best_of_k_curves",
    "best_of_k_quality",
    "binned_curves",
    "calibration_bins",
    "concave_marginals",
    "heldout_quality",
    "routing_curves",
    "sc_predicted_curves",
    "self_consistency_curves",
    "tercile_shares",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def best_of_k_quality(rewards: npt.ArrayLike, max_budget: int) -> FloatArray:
    """``(n, max_budget + 1)`` exact expected best-of-k success for ``k = 0 … max_budget``.

    From ``m ≥ max_budget`` binary rewards with ``c`` successes, best-of-k (with a verifier) over
    a random k-subset succeeds with probability ``1 - C(m - c, k) / C(m, k)``.
    """
    marginals = marginals_from_rewards(np.asarray(rewards, dtype=np.float64), max_budget)
    zeros = np.zeros((marginals.shape[0], 1))
    result: FloatArray = np.concatenate([zeros, np.cumsum(marginals, axis=1)], axis=1)
    return result


def concave_marginals(quality: npt.ArrayLike) -> FloatArray:
    """Marginals ``(n, B)`` of each row's least concave majorant of ``quality`` ``(n, B + 1)``.

    Greedy allocation is exact only for non-increasing marginals; a majority vote's curve can dip
    (a tie at even ``k``), so the allocator is given its concave envelope, clipped at zero
    (units past the curve's peak are worth nothing). Results are always scored on the true curve.
    """
    q = np.asarray(quality, dtype=np.float64)
    out = np.zeros((q.shape[0], q.shape[1] - 1))
    for i, row in enumerate(q):
        hull = _upper_hull(row)
        out[i] = np.maximum(np.diff(hull), 0.0)
    # The hull's slopes are non-increasing; clipping keeps them so.
    return out


def _upper_hull(row: FloatArray) -> FloatArray:
    """Values at ``0 … B`` of the least concave majorant of the points ``(k, row[k])``."""
    points: list[int] = []
    for k in range(len(row)):
        while len(points) >= 2:
            a, b = points[-2], points[-1]
            # Drop b if it lies on or below the chord from a to k.
            if (row[b] - row[a]) * (k - a) <= (row[k] - row[a]) * (b - a):
                points.pop()
            else:
                break
        points.append(k)
    result: FloatArray = np.interp(np.arange(len(row)), points, row[points])
    return result


def _allocate(marginals: FloatArray, average: float) -> IntArray:
    total = math.floor(average * marginals.shape[0] + 1e-9)
    result: IntArray = np.asarray(allocate(marginals, total), dtype=np.int64)
    return result


def heldout_quality(rewards: npt.ArrayLike, max_budget: int) -> FloatArray:
    """Best-of-k quality ``(n, max_budget + 1)`` of held-out questions with ``m`` samples each.

    Exact up to ``m`` (order statistics); past ``m`` each question continues with the geometric
    tail of its observed success rate, kept non-increasing, so a held-out set with fewer samples
    than ``max_budget`` still describes every budget.
    """
    r = np.asarray(rewards, dtype=np.float64)
    m = r.shape[1]
    depth = min(m, max_budget)
    marginals = marginals_from_rewards(r, depth)
    if depth < max_budget:
        tail = marginals_from_success_prob(r.mean(axis=1), max_budget)[:, depth:]
        marginals = np.minimum.accumulate(np.concatenate([marginals, tail], axis=1), axis=1)
    zeros = np.zeros((r.shape[0], 1))
    result: FloatArray = np.concatenate([zeros, np.cumsum(marginals, axis=1)], axis=1)
    return result


def binned_curves(
    reference_quality: FloatArray,
    reference_scores: FloatArray,
    target_scores: FloatArray,
    *,
    n_bins: int = 10,
) -> FloatArray:
    """Predicted quality curves for targets: the mean held-out curve of their score bin.

    The held-out questions are cut into ``n_bins`` equal-count bins of predicted score; each
    target gets its bin's mean curve, an estimate of ``E[q(x, b) | score]``. Where the probe is
    unsure (a bin mixing impossible and easy questions) this keeps the mixture's shape, which the
    plug-in ``1 - (1 - λ̂)^b`` of the mean λ̂ does not: the plug-in over-spends on the bin.
    """
    edges = np.quantile(reference_scores, np.linspace(0, 1, n_bins + 1)[1:-1])
    ref_bin = np.searchsorted(edges, reference_scores, side="right")
    means = np.stack(
        [
            reference_quality[ref_bin == k].mean(axis=0)
            if np.any(ref_bin == k)
            else reference_quality.mean(axis=0)
            for k in range(n_bins)
        ]
    )
    result: FloatArray = means[np.searchsorted(edges, target_scores, side="right")]
    return result


def best_of_k_curves(
    test: SplitData,
    val: SplitData,
    budgets: FloatArray,
    max_budget: int,
    *,
    n_bins: int = 8,
    curve_bins: int = 10,
) -> dict[str, Curve]:
    """Expected best-of-k success vs average budget (the paper's Fig. 3, right column).

    Methods: ``uniform``; ``online`` (exact per-batch allocation on marginals predicted from λ̂
    through val: :func:`binned_curves`); ``online_plugin`` (the paper's recipe, marginals
    ``λ̂(1 - λ̂)^(j-1)``); ``offline`` (one budget per λ̂ bin, fitted on val); ``oracle``.
    """
    true_marginals = np.diff(best_of_k_quality(test.rewards, max_budget), axis=1)
    val_quality = heldout_quality(val.rewards, max_budget)
    val_marginals = np.diff(val_quality, axis=1)
    predicted = np.diff(
        binned_curves(val_quality, val.lambda_hat, test.lambda_hat, n_bins=curve_bins), axis=1
    )
    plugin = marginals_from_success_prob(np.clip(test.lambda_hat, 0.0, 1.0), max_budget)
    return {
        "uniform": uniform_curve(true_marginals, budgets),
        "online": online_curve(true_marginals, predicted, budgets),
        "online_plugin": online_curve(true_marginals, plugin, budgets, name="online_plugin"),
        "offline": offline_curve(
            true_marginals, test.lambda_hat, val.lambda_hat, val_marginals, budgets, n_bins=n_bins
        ),
        "oracle": oracle_curve(true_marginals, budgets),
    }


def sc_predicted_curves(
    reference: SplitData, target_scores: FloatArray, max_budget: int, *, n_bins: int = 10
) -> FloatArray:
    """Predicted self-consistency curves ``(n_target, max_budget + 1)`` from λ̂ alone.

    Each target gets the mean majority-vote curve of the held-out questions in its λ̂ bin
    (:func:`binned_curves`); curves stay flat past the held-out sample count (no data there).
    """
    m = reference.rewards.shape[1]
    depth = min(m, max_budget)
    curves = majority_vote_curves(reference.answers, reference.rewards, depth)
    target = binned_curves(curves, reference.lambda_hat, target_scores, n_bins=n_bins)
    if depth < max_budget:
        pad = np.repeat(target[:, -1:], max_budget - depth, axis=1)
        target = np.concatenate([target, pad], axis=1)
    return target


def self_consistency_curves(
    test: SplitData, val: SplitData, budgets: FloatArray, max_budget: int
) -> tuple[dict[str, Curve], FloatArray]:
    """Expected majority-vote success vs average budget (no verifier at serving time).

    Returns the curves (uniform, online, oracle) and the test questions' true SC quality table.
    The allocator sees concave envelopes (:func:`concave_marginals`); success is always scored
    on the true curves, which may dip.
    """
    quality = majority_vote_curves(test.answers, test.rewards, max_budget)
    true_marginals = np.diff(quality, axis=1)
    predicted = concave_marginals(sc_predicted_curves(val, test.lambda_hat, max_budget))
    oracle = concave_marginals(quality)
    curves = {
        "uniform": uniform_curve(true_marginals, budgets),
        "online": online_curve(true_marginals, predicted, budgets),
        "oracle": online_curve(true_marginals, oracle, budgets, name="oracle"),
    }
    return curves, quality


def routing_curves(
    weak: FloatArray, strong: FloatArray, learned_score: FloatArray, fractions: FloatArray
) -> tuple[dict[str, FloatArray], dict[str, float]]:
    """Expected success vs the fraction of questions routed to the strong procedure.

    ``weak``/``strong`` are each question's exact expected success under the two procedures;
    ``learned_score`` ranks questions for the learned router (highest first). Also returns APGR,
    the mean over ``fractions`` of the performance gap recovered ``(Q(f) - Q_weak) /
    (Q_strong - Q_weak)``.
    """
    n = len(weak)
    gain = strong - weak
    orders = {
        "learned": np.argsort(-learned_score, kind="stable"),
        "oracle": np.argsort(-gain, kind="stable"),
    }
    curves: dict[str, list[float]] = {"random": [], "learned": [], "oracle": []}
    base, top = float(weak.mean()), float(strong.mean())
    for f in fractions:
        k = round(f * n)
        curves["random"].append(base + (top - base) * k / n)
        for name, order in orders.items():
            curves[name].append(base + float(gain[order[:k]].sum()) / n)
    result = {k: np.asarray(v) for k, v in curves.items()}
    span = top - base
    apgr = {
        k: float(np.mean((v - base) / span)) if abs(span) > 1e-12 else float("nan")
        for k, v in result.items()
    }
    return result, apgr


def tercile_shares(lambda_hat: FloatArray, budgets: Sequence[int], max_budget: int) -> FloatArray:
    """Share of the online allocation going to predicted easy / medium / hard thirds (Fig. 6)."""
    predicted = marginals_from_success_prob(np.clip(lambda_hat, 0.0, 1.0), max_budget)
    order = np.argsort(-lambda_hat, kind="stable")  # easiest (highest λ̂) first
    thirds = np.array_split(order, 3)
    shares = np.zeros((len(budgets), 3))
    for row, b in enumerate(budgets):
        alloc = _allocate(predicted, float(b))
        total = max(int(alloc.sum()), 1)
        shares[row] = [alloc[t].sum() / total for t in thirds]
    return shares


def calibration_bins(predicted: FloatArray, observed: FloatArray, bins: int = 10) -> FloatArray:
    """``(bins, 2)``: mean predicted vs mean observed over equal-count bins of ``predicted``."""
    order = np.argsort(predicted, kind="stable")
    return np.array(
        [[predicted[c].mean(), observed[c].mean()] for c in np.array_split(order, bins) if len(c)]
    )
