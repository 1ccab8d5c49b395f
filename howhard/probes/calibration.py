"""Post-hoc calibration of probability heads on the validation split: temperature or isotonic.

Both are fitted on the probe's validation predictions against the soft labels and stored in the
checkpoint as plain numbers (a temperature, or the isotonic curve's breakpoints).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["apply_isotonic", "fit_isotonic", "fit_temperature", "sigmoid"]

FloatArray = npt.NDArray[np.float64]


def sigmoid(z: npt.ArrayLike) -> FloatArray:
    """Overflow-free logistic function."""
    result: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))
    return result


def _bce_at(scale: float, logits: FloatArray, y: FloatArray) -> float:
    z = scale * logits
    # log(1 + e^z) - y·z is the soft-label cross-entropy in logit form, stable for any z.
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def fit_temperature(logits: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Temperature ``T`` minimising the cross-entropy of ``sigmoid(logits / T)`` against ``y``.

    The loss is convex in ``1/T``, so a golden-section search over ``log(1/T)`` in
    ``[log 1e-3, log 1e3]`` finds the optimum.
    """
    z = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(y, dtype=np.float64)
    lo, hi = math.log(1e-3), math.log(1e3)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = _bce_at(math.exp(a), z, labels), _bce_at(math.exp(b), z, labels)
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = _bce_at(math.exp(a), z, labels)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = _bce_at(math.exp(b), z, labels)
    return 1.0 / math.exp((lo + hi) / 2)


def fit_isotonic(p: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Non-decreasing fit of ``y`` on ``p`` (pool-adjacent-violators).

    Returns breakpoints ``(x, fitted)`` sorted by ``x``; apply with :func:`apply_isotonic`.
    """
    order = np.argsort(np.asarray(p, dtype=np.float64), kind="stable")
    xs = np.asarray(p, dtype=np.float64)[order]
    ys = np.asarray(y, dtype=np.float64)[order]
    values: list[float] = []
    weights: list[float] = []
    lows: list[float] = []
    highs: list[float] = []
    for x, v in zip(xs, ys, strict=True):
        values.append(float(v))
        weights.append(1.0)
        lows.append(float(x))
        highs.append(float(x))
        while len(values) > 1 and values[-2] > values[-1]:
            w = weights[-2] + weights[-1]
            merged = (values[-2] * weights[-2] + values[-1] * weights[-1]) / w
            values[-2:] = [merged]
            weights[-2:] = [w]
            lows[-2:] = [lows[-2]]
            highs[-2:] = [highs[-1]]
    # Each block spans [low, high] at a constant value: two breakpoints per block.
    bx = np.repeat(np.column_stack([lows, highs]).ravel()[None, :], 1, axis=0).ravel()
    by = np.repeat(np.asarray(values), 2)
    return bx, by


def apply_isotonic(p: npt.ArrayLike, x: npt.ArrayLike, fitted: npt.ArrayLike) -> FloatArray:
    """Evaluate a fitted isotonic curve at ``p`` (linear between blocks, flat outside)."""
    result: FloatArray = np.interp(
        np.asarray(p, dtype=np.float64),
        np.asarray(x, dtype=np.float64),
        np.asarray(fitted, dtype=np.float64),
    )
    return result
