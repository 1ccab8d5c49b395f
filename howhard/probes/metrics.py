"""How good is a difficulty probe: the paper's Table 1 metrics plus calibration and ranking.

All functions are numpy-only and take predictions and labels as ``(n,)`` arrays (``(n, B)`` for
the Δ loss). The *score* a probe ranks requests by is λ for the ``lambda`` head, the preference
probability for ``preference`` and the first marginal ``Δ_1`` for ``delta``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "above_median_accuracy",
    "binary_cross_entropy",
    "expected_calibration_error",
    "probe_metrics",
    "spearman",
]

FloatArray = npt.NDArray[np.float64]
_EPS = 1e-7


def binary_cross_entropy(p: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Mean cross-entropy of probabilities ``p`` against soft labels ``y`` (the paper's Eq. 7)."""
    probs = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    labels = np.asarray(y, dtype=np.float64)
    return float(-np.mean(labels * np.log(probs) + (1 - labels) * np.log(1 - probs)))


def _squared_error(pred: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Mean over requests of ``‖Δ - Δ̂‖²`` (the paper's Eq. 6)."""
    diff = np.asarray(pred, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    return float(np.mean(np.sum(diff.reshape(len(diff), -1) ** 2, axis=1)))


def above_median_accuracy(score: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Accuracy at telling above-median requests from the rest (Table 1's "Acc.").

    A request is positive when its label exceeds the labels' median; the probe calls positive
    the same number of requests, those it scores highest (ties by order). Ranking rather than
    thresholding the raw score at the label median keeps the figure independent of calibration;
    for a calibrated probe both agree. A random probe scores about the base rate's balance.
    """
    scores = np.asarray(score, dtype=np.float64)
    labels = np.asarray(y, dtype=np.float64)
    truth = labels > np.median(labels)
    positives = int(truth.sum())
    called = np.zeros(len(scores), dtype=bool)
    if positives:
        called[np.argsort(-scores, kind="stable")[:positives]] = True
    return float(np.mean(called == truth))


def _ranks(values: FloatArray) -> FloatArray:
    """Ranks 1..n with ties given their average rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1, dtype=np.float64)
    unique, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    if len(unique) < len(values):
        sums = np.bincount(inverse, weights=ranks)
        ranks = (sums / counts)[inverse]
    return ranks


def spearman(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Spearman rank correlation with average ranks for ties; NaN when either side is constant."""
    x = _ranks(np.asarray(a, dtype=np.float64))
    y = _ranks(np.asarray(b, dtype=np.float64))
    x -= x.mean()
    y -= y.mean()
    denom = float(np.sqrt(np.sum(x * x) * np.sum(y * y)))
    return float(np.sum(x * y) / denom) if denom > 0 else float("nan")


def expected_calibration_error(p: npt.ArrayLike, y: npt.ArrayLike, *, bins: int = 10) -> float:
    """ECE: the request-weighted mean ``|mean(p) - mean(y)|`` over ``bins`` equal-width bins."""
    probs = np.asarray(p, dtype=np.float64)
    labels = np.asarray(y, dtype=np.float64)
    which = np.minimum((np.clip(probs, 0, 1) * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(probs[mask].mean() - labels[mask].mean())
    return float(total / max(len(probs), 1))


def probe_metrics(
    head: str,
    pred: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    train_mean: npt.ArrayLike,
) -> Mapping[str, Any]:
    """Table 1 on one split: loss, "Avg." and "Opt." losses, above-median accuracy, ECE, Spearman.

    ``pred`` and ``y`` are probabilities ``(n,)`` for the ``lambda``/``preference`` heads (loss =
    cross-entropy on soft labels) and marginals ``(n, B)`` for ``delta`` (loss = squared error).
    "Avg." predicts ``train_mean`` (the training labels' mean) for every request; "Opt." is the
    loss of a perfect predictor on these soft labels: their entropy for cross-entropy, 0 for the
    squared error.
    """
    predictions = np.asarray(pred, dtype=np.float64)
    labels = np.asarray(y, dtype=np.float64)
    constant = np.broadcast_to(np.asarray(train_mean, dtype=np.float64), labels.shape)
    if head == "delta":
        loss, avg, opt = (
            _squared_error(predictions, labels),
            _squared_error(constant, labels),
            0.0,
        )
        score, truth = predictions[:, 0], labels[:, 0]
    else:
        loss, avg, opt = (
            binary_cross_entropy(predictions, labels),
            binary_cross_entropy(constant, labels),
            binary_cross_entropy(labels, labels),
        )
        score, truth = predictions, labels
    calibrated = bool(np.all((score >= 0) & (score <= 1)))
    return {
        "n": len(labels),
        "loss": loss,
        "avg_loss": avg,
        "opt_loss": opt,
        "accuracy": above_median_accuracy(score, truth),
        "ece": expected_calibration_error(score, truth) if calibrated else None,
        "spearman": spearman(score, truth),
    }
