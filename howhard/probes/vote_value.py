"""How much a self-consistency vote still stands to gain: a small learned value model.

Without a verifier a vote's correctness is never observed while serving, so the value of more
samples is predicted from what is observed, the vote state (samples N, top count n1, runner-up
n2, distinct answers, samples without an answer) and the difficulty probe's logit z, by a
2-layer MLP (8 → 32 → 2, numpy as served) trained on logged samples with reference answers::

    now   = P(the current majority answer is right | state)
    final = P(the majority after ``max_budget`` samples is right | state)
    gain  = max(0, final - now)

Hopeless requests (low z, diffuse votes) and settled ones both predict ~0 gain, so the value
rule (:class:`howhard.procedures.ValueRule`) stops both early; contested, plausible ones go on.
``howhard.training.vote_value`` fits it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError

__all__ = ["VoteValueModel", "vote_features"]

FloatArray = npt.NDArray[np.float64]
FORMAT = "howhard.vote-value/1"


def vote_features(
    used: npt.ArrayLike,
    n1: npt.ArrayLike,
    n2: npt.ArrayLike,
    distinct: npt.ArrayLike,
    nulls: npt.ArrayLike,
    z: npt.ArrayLike,
    max_budget: int,
) -> FloatArray:
    """``(n, 8)`` features of vote states (arguments broadcast to ``(n,)``)."""
    n = np.asarray(used, dtype=np.float64)
    a, b = np.asarray(n1, dtype=np.float64), np.asarray(n2, dtype=np.float64)
    k, none = np.asarray(distinct, dtype=np.float64), np.asarray(nulls, dtype=np.float64)
    zz = np.asarray(z, dtype=np.float64)
    per = np.maximum(n, 1.0)
    columns = np.broadcast_arrays(
        n / max_budget, a / per, b / per, (a - b) / 4.0, k / per, none / per, zz, zz * a / per
    )
    result: FloatArray = np.stack(columns, axis=-1)
    return result


@dataclass(frozen=True, slots=True)
class VoteValueModel:
    """The trained MLP: ``relu(x @ w1 + b1) @ w2 + b2`` → sigmoid → ``(now, final)``."""

    w1: FloatArray
    b1: FloatArray
    w2: FloatArray
    b2: FloatArray
    max_budget: int = 16

    def predict(self, features: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``(now, final)`` per row of ``features`` ``(n, 8)``."""
        h = np.maximum(features @ self.w1 + self.b1, 0.0)
        out = 1.0 / (1.0 + np.exp(-(h @ self.w2 + self.b2)))
        return out[..., 0], out[..., 1]

    def gain(self, features: FloatArray) -> FloatArray:
        """``max(0, final - now)`` per row."""
        now, final = self.predict(features)
        result: FloatArray = np.maximum(final - now, 0.0)
        return result

    def save(self, path: Path) -> None:
        """Write the weights as JSON (a few hundred numbers)."""
        record = {
            "format": FORMAT,
            "max_budget": self.max_budget,
            **{k: getattr(self, k).tolist() for k in ("w1", "b1", "w2", "b2")},
        }
        path.write_text(json.dumps(record), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> VoteValueModel:
        """Read what :meth:`save` wrote."""
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        if record.get("format") != FORMAT:
            raise ConfigError(f"{path} is not a vote-value model ({FORMAT}); train one first")
        arrays = {k: np.asarray(record[k], dtype=np.float64) for k in ("w1", "b1", "w2", "b2")}
        return cls(max_budget=int(record["max_budget"]), **arrays)
