"""Evaluation data: one split of a collected dataset with the probes' predictions, aligned by row.

:func:`load_split` reads what ``howhard collect``, ``howhard features`` and ``howhard train``
wrote (the dataset's rewards, the prompts' features, the probes' checkpoints) plus each sample's
canonical answer, and returns a :class:`SplitData` for the benchmark report.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError
from howhard.probes import SavedProbe, load_checkpoint
from howhard.training.features import load_features

__all__ = ["SplitData", "load_split", "read_jsonl"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitData:
    """One split's collected outcomes and the probes' predictions for it, aligned by row."""

    ids: tuple[str, ...]
    families: tuple[str, ...]
    rewards: FloatArray
    """``(n, m)`` binary rewards of the ``m`` samples per question."""
    answers: tuple[tuple[str | None, ...], ...]
    """``n`` rows of ``m`` canonical answers (what self-consistency votes on)."""
    tokens: IntArray
    """``(n, m)`` completion tokens per sample."""
    lambda_hat: FloatArray
    """``(n,)`` the λ probe's predicted single-sample success."""
    preference_hat: FloatArray | None = None
    """``(n,)`` the preference probe's P(strong ≻ weak), if one was trained."""

    def __post_init__(self) -> None:
        n = len(self.ids)
        shapes = {
            "rewards": self.rewards.shape[:1],
            "tokens": self.tokens.shape[:1],
            "lambda_hat": self.lambda_hat.shape,
            "answers": (len(self.answers),),
            "families": (len(self.families),),
        }
        if self.preference_hat is not None:
            shapes["preference_hat"] = self.preference_hat.shape
        bad = {k: v for k, v in shapes.items() if v != (n,)}
        if bad or self.rewards.ndim != 2:
            raise ValueError(f"split arrays must all have {n} rows (one per id), got {bad}")

    @property
    def success(self) -> FloatArray:
        """``(n,)`` empirical single-sample success λ."""
        result: FloatArray = self.rewards.mean(axis=1)
        return result


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL file; a missing file says to run the collection first."""
    if not path.exists():
        raise ConfigError(f"{path} does not exist; run the collection first (see data/README.md)")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def load_split(
    dataset: Path,
    features: Path,
    lambda_probe: Path,
    *,
    answers: Callable[[Path], Mapping[str, tuple[Sequence[str | None], Sequence[int]]]],
    split: str | None = None,
    preference_probe: Path | None = None,
) -> SplitData:
    """Load one split of a collected dataset with the probes' predictions, as ``SplitData``.

    ``answers`` reads a dataset folder's per-sample canonical answers and completion tokens,
    by request id, in sample order (for the benchmark tasks:
    :func:`howhard.tasks.answers.read_answers`).
    ``split`` keeps only rows whose ``metadata.split`` matches (``None`` keeps all).
    """
    rows = read_jsonl(dataset / "requests.jsonl")
    if split is not None:
        rows = [r for r in rows if (r.get("metadata") or {}).get("split") == split]
    if not rows:
        raise ConfigError(f"{dataset} has no requests for split={split!r}")
    canonical = answers(dataset)
    missing = [r["id"] for r in rows if r["id"] not in canonical]
    if missing:
        raise ConfigError(
            f"{dataset}/answers.jsonl lacks {len(missing)} requests (first {missing[0]!r}); "
            f"run `python -m howhard.tasks answers {dataset}`"
        )
    ids = tuple(str(r["id"]) for r in rows)
    x = load_features(features).aligned(ids)
    lam = SavedProbe(load_checkpoint(lambda_probe)).predict(x)
    pref = None
    if preference_probe is not None:
        pref = SavedProbe(load_checkpoint(preference_probe)).predict(x)
    return SplitData(
        ids=ids,
        families=tuple(str(r["metadata"]["family"]) for r in rows),
        rewards=np.asarray([r["rewards"] for r in rows], dtype=np.float64),
        answers=tuple(tuple(canonical[i][0]) for i in ids),
        tokens=np.asarray([canonical[i][1] for i in ids], dtype=np.int64),
        lambda_hat=np.asarray(lam, dtype=np.float64),
        preference_hat=None if pref is None else np.asarray(pref, dtype=np.float64),
    )
