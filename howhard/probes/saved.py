"""A saved MLP probe, run with numpy: features in, calibrated scores and marginals out.

Serving a probe needs no torch: the 2-layer MLP is two matrix products. The same code computes
the test metrics at training time, so the reported figures are those of the served probe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.errors import CheckpointError, ConfigError
from howhard.probes.calibration import apply_isotonic, sigmoid
from howhard.probes.checkpoint import Checkpoint
from howhard.probes.heads import marginals_from_head

__all__ = ["SavedProbe"]

FloatArray = npt.NDArray[np.float64]


class SavedProbe:
    """An ``mlp`` checkpoint ready to run on feature rows ``(n, input_dim)``."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        config = checkpoint.config
        if config.get("kind") != "mlp":
            raise CheckpointError(
                f"SavedProbe runs mlp checkpoints, got kind={config.get('kind')!r}"
            )
        self.config: Mapping[str, Any] = config
        t = {k: np.asarray(v, dtype=np.float64) for k, v in checkpoint.tensors.items()}
        self._tensors = t
        self.head: str = str(config["head"])
        self.max_budget: int = int(config["max_budget"])
        self.input_dim: int = int(config["input_dim"])
        calibration = config.get("calibration") or {}
        self.calibration: str = str(calibration.get("method", "none"))
        self.temperature: float = float(calibration.get("temperature", 1.0))

    def raw(self, features: npt.ArrayLike) -> FloatArray:
        """The head's pre-activation output: logits ``(n,)`` or Δ increments' logits ``(n, B)``."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ConfigError(
                f"features must have shape (n, {self.input_dim}) for this probe, got {x.shape}; "
                "encode with the model and layer the probe was trained on "
                f"({dict(self.config.get('encoder') or {})})"
            )
        t = self._tensors
        z = (x - t["feature_mean"]) / t["feature_std"]
        hidden = np.maximum(z @ t["fc1.weight"].T + t["fc1.bias"], 0.0)
        out: FloatArray = hidden @ t["fc2.weight"].T + t["fc2.bias"]
        return out[:, 0] if self.head != "delta" else out

    def standardise(self, features: npt.ArrayLike) -> FloatArray:
        """Feature rows standardised with the training mean and sd the probe stores ``(n, d)``."""
        x = np.asarray(features, dtype=np.float64)
        t = self._tensors
        out: FloatArray = (x - t["feature_mean"]) / t["feature_std"]
        return out

    def logits(self, features: npt.ArrayLike) -> FloatArray:
        """Calibrated logits ``(n,)``: ``raw / temperature`` (λ and preference heads)."""
        if self.head == "delta":
            raise ConfigError("a delta probe has no single logit; use marginals()")
        scale = self.temperature if self.calibration == "temperature" else 1.0
        out: FloatArray = self.raw(features) / scale
        return out

    def uncalibrated(self, features: npt.ArrayLike) -> FloatArray:
        """Head output before calibration: probabilities ``(n,)`` or marginals ``(n, B)``."""
        raw = self.raw(features)
        if self.head == "delta":
            # Non-negative increments summed from the end: each row is non-increasing.
            increments = np.logaddexp(0.0, raw)
            result: FloatArray = np.flip(np.cumsum(np.flip(increments, 1), 1), 1)
            return result
        return sigmoid(raw)

    def predict(self, features: npt.ArrayLike) -> FloatArray:
        """Calibrated head output: probabilities ``(n,)`` (λ or preference) or Δ rows ``(n, B)``."""
        if self.head == "delta" or self.calibration == "none":
            return self.uncalibrated(features)
        if self.calibration == "temperature":
            return sigmoid(self.raw(features) / self.temperature)
        if self.calibration == "isotonic":
            t = self._tensors
            return apply_isotonic(
                self.uncalibrated(features), t["calibration.x"], t["calibration.y"]
            )
        raise CheckpointError(f"unknown calibration method {self.calibration!r}")

    def marginals(self, features: npt.ArrayLike, max_budget: int | None = None) -> FloatArray:
        """``(n, max_budget)`` marginal rewards for the allocator (default: the trained budget)."""
        budget = self.max_budget if max_budget is None else max_budget
        return marginals_from_head(self.head, self.predict(features), budget)
