"""``RecordedProbe``: a probe's outputs replayed from a table, for evaluations and tests.

Evaluating a policy *as served* on collected data needs what the probe said about each prompt
(its calibrated logit and standardised features) without re-encoding every prompt for every run;
``howhard evaluate`` computes them once per probe and replays them through this reader. It is a
stand-in for :meth:`ProbePredictor.read <howhard.probes.ProbePredictor.read>`, not a probe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError
from howhard.types import Request

__all__ = ["RecordedProbe"]

FloatArray = npt.NDArray[np.float64]


class RecordedProbe:
    """Replays ``(logit, features)`` per prompt: ``logits[prompt]`` and ``features[prompt]``."""

    def __init__(self, logits: Mapping[str, float], features: Mapping[str, npt.ArrayLike]) -> None:
        self._logits = dict(logits)
        self._features = {k: np.asarray(v, dtype=np.float64) for k, v in features.items()}

    @classmethod
    def from_arrays(
        cls, prompts: Sequence[str], logits: npt.ArrayLike, features: npt.ArrayLike
    ) -> RecordedProbe:
        """From aligned arrays: ``prompts (n)``, ``logits (n,)``, ``features (n, d)``."""
        z = np.asarray(logits, dtype=np.float64)
        x = np.asarray(features, dtype=np.float64)
        if z.shape != (len(prompts),) or x.ndim != 2 or len(x) != len(prompts):
            raise ConfigError(
                f"need one logit and one feature row per prompt, got {z.shape} and {x.shape} "
                f"for {len(prompts)} prompts"
            )
        return cls(dict(zip(prompts, z.tolist(), strict=True)), dict(zip(prompts, x, strict=True)))

    async def read(self, requests: Sequence[Request]) -> tuple[FloatArray, FloatArray]:
        """The recorded logits ``(n,)`` and features ``(n, d)`` of the requests' prompts."""
        missing = [r.prompt for r in requests if r.prompt not in self._logits]
        if missing:
            raise ConfigError(f"RecordedProbe has no entry for prompt {missing[0]!r}")
        logits = np.array([self._logits[r.prompt] for r in requests], dtype=np.float64)
        if not requests:
            return logits, np.zeros((0, 0))
        return logits, np.stack([self._features[r.prompt] for r in requests])
