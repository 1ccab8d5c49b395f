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
``howhard.training.vote_value`` fits it; :func:`default_value_model` loads the one shipped in
the package (``howhard/assets/vote-value/model.json``: fitted on 29 task families, 16 of them
unseen by the shipped λ probe, with z as that probe serves it; ``scripts/train_vote_value.py``
regenerates it, ``results/self-consistency.md`` measures it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError

__all__ = ["VoteValueModel", "default_value_model", "vote_features"]

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
    """The trained MLP: ``relu(x @ w1 + b1) @ w2 + b2`` → sigmoid → ``(now, final)``.

    ``price``: the per-sample price chosen for it on validation data (what
    :meth:`howhard.procedures.ValueRule.default` uses); ``info``: what it was fitted on.
    """

    w1: FloatArray
    b1: FloatArray
    w2: FloatArray
    b2: FloatArray
    max_budget: int = 16
    price: float = 0.0
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        shapes = (self.w1.shape, self.b1.shape, self.w2.shape, self.b2.shape)
        hidden = self.b1.shape[0] if self.b1.ndim == 1 else -1
        if shapes != ((8, hidden), (hidden,), (hidden, 2), (2,)):
            raise ConfigError(
                f"a vote-value model needs w1 (8, h), b1 (h,), w2 (h, 2), b2 (2,); got {shapes}"
            )
        arrays = (self.w1, self.b1, self.w2, self.b2)
        if not all(np.isfinite(a).all() for a in arrays):
            raise ConfigError("a vote-value model's weights must be finite; retrain it")
        if not math.isfinite(self.price) or self.price < 0:
            raise ConfigError(f"price must be a finite number >= 0, got {self.price!r}")

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
            "price": self.price,
            "info": self.info,
            **{k: getattr(self, k).tolist() for k in ("w1", "b1", "w2", "b2")},
        }
        Path(path).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> VoteValueModel:
        """Read what :meth:`save` wrote."""
        try:
            record = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read a vote-value model from {path}: {exc}") from exc
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ConfigError(f"{path} is not a vote-value model ({FORMAT}); train one first")
        try:
            arrays = {k: np.asarray(record[k], dtype=np.float64) for k in ("w1", "b1", "w2", "b2")}
            return cls(
                max_budget=int(record["max_budget"]),
                price=float(record.get("price", 0.0)),
                info=dict(record.get("info") or {}),
                **arrays,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path} is a corrupt vote-value model ({exc}); retrain it") from exc


def default_value_model() -> VoteValueModel:
    """The value model shipped with howhard (fitted across task families; its ``price`` was
    chosen on families held out of the fit)."""
    asset = resources.files("howhard") / "assets" / "vote-value" / "model.json"
    with resources.as_file(asset) as path:
        return VoteValueModel.load(path)
