"""Probe inputs: the base LM's last-token hidden state of each prompt, stored beside the dataset.

Any :class:`~howhard.backends.Encoder` works: ``TransformersBackend`` (any layer), an in-process
vLLM pooling engine or an embeddings endpoint (last layer). Prompts are rendered exactly as the
generating backend renders them, so the features are the states serving computes. Features are
saved as ``NAME.npy`` (float16 by default, row ``i`` = request ``ids[i]``) plus ``NAME.json``
recording the ids, the encoder, the model and the layer, so training and serving can check they
use the same representation.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.backends.base import Encoder
from howhard.errors import ConfigError

__all__ = [
    "Features",
    "extract_features",
    "load_features",
    "save_features",
]

FEATURES_FORMAT = "howhard.features/1"


@dataclass(frozen=True, slots=True)
class Features:
    """Feature rows aligned with request ids, and what produced them."""

    ids: tuple[str, ...]
    array: npt.NDArray[np.floating[Any]]
    """``(n, dim)`` features; row ``i`` belongs to ``ids[i]``."""
    meta: Mapping[str, Any] = field(default_factory=dict)
    """Encoder, model, layer, dtype … as recorded by :func:`save_features`."""

    def aligned(self, ids: Sequence[str]) -> npt.NDArray[np.float32]:
        """Rows for ``ids`` in that order, as float32; a missing id is a ConfigError."""
        index = {request_id: i for i, request_id in enumerate(self.ids)}
        missing = [i for i in ids if i not in index]
        if missing:
            raise ConfigError(
                f"{len(missing)} request ids have no features (first: {missing[0]!r}); run "
                "howhard features on the same dataset"
            )
        rows = np.asarray([index[i] for i in ids], dtype=np.int64)
        return np.asarray(self.array[rows], dtype=np.float32)


def _paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    base = Path(path)
    if base.suffix == ".npy":
        base = base.with_suffix("")
    return base.with_suffix(".npy"), base.with_suffix(".json")


def save_features(
    path: str | os.PathLike[str],
    ids: Sequence[str],
    array: npt.ArrayLike,
    meta: Mapping[str, Any],
    *,
    dtype: str = "float16",
) -> Path:
    """Write ``PATH.npy`` (``dtype``) and ``PATH.json`` (ids + ``meta``); returns the .npy path."""
    values = np.asarray(array)
    if values.ndim != 2 or values.shape[0] != len(ids):
        raise ConfigError(
            f"features must have shape (len(ids)={len(ids)}, dim), got {values.shape}"
        )
    if dtype not in ("float16", "float32"):
        raise ConfigError(f"dtype must be 'float16' or 'float32', got {dtype!r}")
    npy, sidecar = _paths(path)
    npy.parent.mkdir(parents=True, exist_ok=True)
    np.save(npy, values.astype(dtype), allow_pickle=False)
    record = {
        "format": FEATURES_FORMAT,
        **meta,
        "dim": int(values.shape[1]),
        "dtype": dtype,
        "ids": list(ids),
    }
    sidecar.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return npy


def load_features(path: str | os.PathLike[str]) -> Features:
    """Read features written by :func:`save_features` (never unpickles)."""
    npy, sidecar = _paths(path)
    if not npy.exists() or not sidecar.exists():
        raise ConfigError(
            f"features={str(path)!r}: expected {npy.name} and {sidecar.name}; run howhard "
            "features first"
        )
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{sidecar} is not valid JSON ({exc}); re-run howhard features") from exc
    if not isinstance(meta, dict) or meta.get("format") != FEATURES_FORMAT:
        raise ConfigError(f"{sidecar} is not a {FEATURES_FORMAT} file")
    if not isinstance(meta.get("ids"), list):
        raise ConfigError(f"{sidecar} lists no ids; re-run howhard features")
    array = np.load(npy, allow_pickle=False)
    ids = tuple(str(i) for i in meta.pop("ids"))
    if array.ndim != 2 or array.shape[0] != len(ids):
        raise ConfigError(
            f"{npy} has shape {array.shape} but {sidecar.name} lists {len(ids)} ids; "
            "re-run howhard features"
        )
    return Features(ids=ids, array=array, meta=meta)


class _Partial:
    """Rows encoded so far, appended to a raw float32 file so an interrupted run can resume.

    ``PATH`` holds whole rows in prompt order; ``PATH.json`` the row width and a hash of the
    prompt list and the encoder's fingerprint (any change starts over). A torn last row is cut
    on resume.
    """

    def __init__(
        self, path: str | os.PathLike[str], prompts: Sequence[str], fingerprint: str
    ) -> None:
        self.path = Path(path)
        self.header = self.path.with_name(self.path.name + ".json")
        text = "\x1e".join([fingerprint, *prompts])
        self.digest = hashlib.sha256(text.encode()).hexdigest()
        self.dim: int | None = None

    def load(self) -> npt.NDArray[np.float32]:
        """Rows finished by an earlier run (possibly none)."""
        if not (self.path.exists() and self.header.exists()):
            return np.zeros((0, 0), dtype=np.float32)
        meta = json.loads(self.header.read_text(encoding="utf-8"))
        if meta.get("prompts") != self.digest:
            return np.zeros((0, 0), dtype=np.float32)
        self.dim = int(meta["dim"])
        data = self.path.read_bytes()
        rows = len(data) // (4 * self.dim)
        with open(self.path, "r+b") as handle:
            handle.truncate(rows * 4 * self.dim)
        return np.frombuffer(data[: rows * 4 * self.dim], dtype=np.float32).reshape(rows, -1)

    def append(self, rows: npt.NDArray[np.float32]) -> None:
        """Persist freshly encoded rows (one write)."""
        if self.dim is None:
            self.dim = int(rows.shape[1])
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_bytes(b"")
            self.header.write_text(json.dumps({"dim": self.dim, "prompts": self.digest}))
        with open(self.path, "ab") as handle:
            handle.write(np.ascontiguousarray(rows, dtype=np.float32).tobytes())


async def extract_features(
    prompts: Sequence[str],
    encoder: Encoder,
    *,
    batch_size: int = 32,
    progress: bool = False,
    partial: str | os.PathLike[str] | None = None,
    fingerprint: str = "",
) -> npt.NDArray[np.float32]:
    """Encode ``prompts`` in batches of ``batch_size`` → ``(n, dim)`` float32.

    With ``partial`` (a file path) every batch is persisted as it finishes, and a rerun over the
    same prompts and encoder ``fingerprint`` (e.g. its JSON description) continues where an
    interrupted one stopped; the caller removes the files after saving (``howhard features``
    does).
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if not prompts:
        raise ConfigError("no prompts to encode")
    store = _Partial(partial, prompts, fingerprint) if partial is not None else None
    done = store.load() if store is not None else np.zeros((0, 0), dtype=np.float32)
    chunks: list[npt.NDArray[np.float32]] = [done] if len(done) else []
    bar: Any = None
    if progress:
        try:
            from rich.progress import Progress
        except ImportError:
            bar = None
        else:
            bar = Progress()
            task = bar.add_task("features", total=len(prompts), completed=len(done))
            bar.start()
    try:
        for start in range(len(done), len(prompts), batch_size):
            batch = list(prompts[start : start + batch_size])
            out = np.asarray(await encoder.encode(batch), dtype=np.float32)
            if out.ndim != 2 or out.shape[0] != len(batch):
                raise ConfigError(
                    f"encoder {type(encoder).__name__} returned shape {out.shape} for "
                    f"{len(batch)} prompts; an Encoder must return (n, hidden_size)"
                )
            if store is not None:
                store.append(out)
            chunks.append(out)
            if bar is not None:
                bar.update(task, advance=len(batch))
    finally:
        if bar is not None:
            bar.stop()
    return np.concatenate(chunks)
