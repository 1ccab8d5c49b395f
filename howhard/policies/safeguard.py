"""``CalibrationSafeguard``: fall back toward uniform when served predictions stop fitting outcomes.

For every served request with a verdict the policy records its own *unshrunk* prediction
``p̂ = P(at least one success among its b samples)`` and whether that happened. On the last
``window`` of them it fits ``hit ~ Bernoulli(sigmoid(γ0 + γ1·logit p̂))`` (MAP, priors
``N(0, intercept_sd²)`` and ``N(1, slope_sd²)``) and shrinks every predicted row toward the mean
recent row by ``ρ = clip(1 - γ1, 0, 1)``. Equal rows make the exact allocator split evenly, so
``ρ = 1`` is uniform best-of-k. A calibrated model (``γ1 ≈ 1``) is left alone; an anti-correlated
one (``γ1 < 0``) is served exactly uniform. (Recording the shrunk prediction would make the
shrinking feed on itself; a realised-gain check cannot see a 0.5 pp loss in under ~10,000
requests, so the safeguard reads the model's calibration instead.)
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError

__all__ = ["CalibrationSafeguard"]

FloatArray = npt.NDArray[np.float64]


class CalibrationSafeguard:
    """Recalibration-slope shrinkage toward the population row (see the module docstring).

    ``enabled=False`` records and reports calibration but never shrinks.
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        window: int = 512,
        min_obs: int = 64,
        slope_sd: float = 0.3,
        intercept_sd: float = 0.5,
        population_batches: int = 64,
    ) -> None:
        if window < 1 or min_obs < 0 or slope_sd <= 0 or intercept_sd <= 0:
            raise ConfigError(
                "window must be >= 1, min_obs >= 0 and the prior sds > 0, got "
                f"window={window}, min_obs={min_obs}, slope_sd={slope_sd}, "
                f"intercept_sd={intercept_sd}"
            )
        self.enabled = enabled
        self.min_obs = min_obs
        self._prior_sd = np.array([intercept_sd, slope_sd])
        self._predicted: deque[float] = deque(maxlen=window)
        self._hits: deque[float] = deque(maxlen=window)
        self._recent: deque[FloatArray] = deque(maxlen=population_batches)
        self.shrink = 0.0
        """ρ: 0 serves the model's rows, 1 the population row (uniform)."""
        self.recalibration = (0.0, 1.0)
        """MAP ``(γ0, γ1)`` on the window; ``(0, 1)`` until ``min_obs`` outcomes."""

    @property
    def observations(self) -> int:
        """Outcomes in the window."""
        return len(self._hits)

    def record(self, predicted: npt.ArrayLike, hit: npt.ArrayLike) -> None:
        """Add outcomes: predicted success probabilities ``(n,)`` and whether each happened."""
        self._predicted.extend(float(x) for x in np.asarray(predicted, dtype=np.float64).ravel())
        self._hits.extend(float(x) for x in np.asarray(hit, dtype=np.float64).ravel())
        if len(self._hits) < max(self.min_obs, 1):
            return
        self.recalibration = self._fit()
        self.shrink = float(np.clip(1.0 - self.recalibration[1], 0.0, 1.0)) if self.enabled else 0.0

    def _fit(self) -> tuple[float, float]:
        p = np.clip(np.asarray(self._predicted), 1e-4, 1 - 1e-4)
        y = np.asarray(self._hits)
        x = np.log(p / (1 - p))
        centre = np.array([0.0, 1.0])
        precision = 1.0 / self._prior_sd**2
        g = centre.copy()
        for _ in range(25):  # Newton steps on a concave log-posterior
            mu = 1.0 / (1.0 + np.exp(-(g[0] + g[1] * x)))
            w = mu * (1 - mu)
            grad = np.array([(y - mu).sum(), ((y - mu) * x).sum()]) - precision * (g - centre)
            hessian = np.array([[w.sum(), (w * x).sum()], [(w * x).sum(), (w * x * x).sum()]])
            step = np.linalg.solve(hessian + np.diag(precision), grad)
            g = g + step
            if np.abs(step).max() < 1e-8:
                break
        return float(g[0]), float(g[1])

    def calibration_error(self) -> float:
        """Binned RMS of observed minus predicted success on the window, noise subtracted."""
        p, y = np.asarray(self._predicted), np.asarray(self._hits)
        if len(p) < 10:
            return 0.0
        bins = np.minimum((np.argsort(np.argsort(p)) * 10) // len(p), 9)
        err2 = noise = 0.0
        for k in range(10):
            s = bins == k
            if s.any():
                err2 += s.sum() * (y[s].mean() - p[s].mean()) ** 2
                noise += (p[s] * (1 - p[s])).sum() / s.sum()
        return float(np.sqrt(max(0.0, (err2 - noise) / len(p))))

    def apply(self, rows: FloatArray) -> FloatArray:
        """``(1-ρ)·rows + ρ·(mean recent row)``; the recent rows include this batch's."""
        if self._recent and self._recent[-1].shape[1] != rows.shape[1]:
            self._recent.clear()  # the bounds' max_budget changed
        self._recent.append(rows)
        if self.shrink <= 0.0:
            return rows
        population = np.concatenate(list(self._recent)).mean(axis=0, keepdims=True)
        shrunk: FloatArray = (1 - self.shrink) * rows + self.shrink * population
        return shrunk
