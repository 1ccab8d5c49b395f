"""The on-disk dataset that ``howhard collect`` writes and labels, features and training read.

A dataset is a folder::

    manifest.json    what produced it: model, backend, scorer, samples, sampling params, command
    requests.jsonl   one row per *finished* request: id, prompt, reference, rewards, aggregates
    samples.jsonl    one row per sample: request id, sample index, text, reward, tokens

``requests.jsonl`` is the commit log: a request is finished exactly when its row is there. Both
files are appended with one ``write`` per request (its samples first, then its request row), so a
crash can only leave a torn last line or samples of an unfinished request; :class:`DatasetWriter`
repairs both on resume and :func:`load_dataset` ignores them, so finished rows are never lost.
``requests.jsonl`` holds everything training needs (rewards included) and stays small enough to
commit; ``samples.jsonl`` keeps the texts for inspection.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from howhard.errors import ConfigError, InvalidRequest
from howhard.types import Request

__all__ = [
    "DATASET_FORMAT",
    "Dataset",
    "DatasetWriter",
    "load_dataset",
    "read_requests",
]

DATASET_FORMAT = "howhard.dataset/1"
"""Format tag written into every manifest; readers refuse folders with another tag."""

MANIFEST = "manifest.json"
REQUESTS = "requests.jsonl"
SAMPLES = "samples.jsonl"


def read_requests(path: str | os.PathLike[str]) -> list[Request]:
    """Read a requests JSONL file: one ``{"id", "prompt", "reference"?, "tenant"?, "metadata"?}``
    object per line (blank lines skipped).

    A missing ``id`` defaults to a hash of the prompt and reference, so re-reading the same file
    gives the same ids (which is what makes ``collect`` resumable). A non-string ``reference``
    (a list of unit tests, say) is kept as its JSON text. Duplicate ids are refused.
    """
    requests: list[Request] = []
    seen: dict[str, int] = {}
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:
        raise ConfigError(
            f"input={str(path)!r} cannot be read ({exc.strerror or exc}); pass a requests "
            "JSONL file"
        ) from exc
    with handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidRequest(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
                raise InvalidRequest(
                    f'{path}:{lineno}: each line must be an object with a string "prompt"'
                )
            reference = row.get("reference")
            if reference is not None and not isinstance(reference, str):
                reference = json.dumps(reference, sort_keys=True)
            request_id = row.get("id")
            if request_id is None:
                digest = hashlib.sha256(f"{row['prompt']}\x1f{reference}".encode()).hexdigest()
                request_id = digest[:16]
            request_id = str(request_id)
            if request_id in seen:
                raise InvalidRequest(
                    f"{path}:{lineno}: duplicate id {request_id!r} (first on line "
                    f"{seen[request_id]}); give every row a unique id"
                )
            seen[request_id] = lineno
            metadata = row.get("metadata") or {}
            if not isinstance(metadata, dict):
                raise InvalidRequest(f'{path}:{lineno}: "metadata" must be an object')
            try:
                requests.append(
                    Request(
                        prompt=row["prompt"],
                        id=request_id,
                        tenant=str(row.get("tenant") or "default"),
                        reference=reference,
                        metadata=metadata,
                    )
                )
            except InvalidRequest as exc:
                raise InvalidRequest(f"{path}:{lineno}: {exc}") from exc
    return requests


@dataclass(frozen=True, slots=True)
class Dataset:
    """A loaded dataset: finished requests in file order, aligned by row index.

    ``rewards`` has shape ``(n_requests, samples)``; it is float64 and NaN-padded on the right
    only if requests were collected with different sample counts.
    """

    path: Path
    manifest: Mapping[str, Any]
    ids: tuple[str, ...]
    prompts: tuple[str, ...]
    references: tuple[str | None, ...]
    rewards: npt.NDArray[np.float64]
    rows: tuple[Mapping[str, Any], ...] = field(repr=False)
    """The raw request rows (aggregates, tenant, metadata …)."""

    def __len__(self) -> int:
        return len(self.ids)

    def index(self) -> dict[str, int]:
        """Map each request id to its row."""
        return {request_id: i for i, request_id in enumerate(self.ids)}

    def counts(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Each request's ``(successes, samples)`` from binary rewards, NaN padding skipped."""
        samples = np.isfinite(self.rewards).sum(axis=1).astype(np.int64)
        successes = np.rint(np.nan_to_num(self.rewards, nan=0.0).sum(axis=1)).astype(np.int64)
        return successes, samples

    def samples(self) -> Iterator[dict[str, Any]]:
        """Yield the sample rows (text, reward, tokens) of finished requests, in file order."""
        finished = set(self.ids)
        for row in _read_jsonl(self.path / SAMPLES):
            if row.get("id") in finished:
                yield row


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield complete JSON rows; a torn last line (no newline, bad JSON) is skipped."""
    if not path.exists():
        return
    with open(path, "rb") as handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                return  # torn tail of an interrupted append
            try:
                row = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                yield row


def load_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Load the finished requests of a dataset folder written by ``howhard collect``."""
    folder = Path(path)
    manifest = _read_manifest(folder)
    if manifest is None:
        raise ConfigError(
            f"dataset={str(folder)!r} has no {MANIFEST}; pass a folder written by howhard collect"
        )
    rows: dict[str, dict[str, Any]] = {}
    for row in _read_jsonl(folder / REQUESTS):
        rows[str(row["id"])] = row  # a re-collected id keeps its latest row
    ordered = tuple(rows.values())
    width = max((len(row["rewards"]) for row in ordered), default=0)
    rewards = np.full((len(ordered), width), np.nan)
    for i, row in enumerate(ordered):
        rewards[i, : len(row["rewards"])] = row["rewards"]
    return Dataset(
        path=folder,
        manifest=manifest,
        ids=tuple(str(row["id"]) for row in ordered),
        prompts=tuple(str(row["prompt"]) for row in ordered),
        references=tuple(row.get("reference") for row in ordered),
        rewards=rewards,
        rows=ordered,
    )


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{path} is not valid JSON ({exc}); pass a folder written by howhard collect"
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != DATASET_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else manifest
        raise ConfigError(
            f"{path} is not a {DATASET_FORMAT} manifest (format={found!r}); "
            "pass a folder written by howhard collect"
        )
    return manifest


def _repair(path: Path) -> None:
    """Cut a torn last line left by an interrupted append."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def request_row(
    request: Request,
    rewards: Sequence[float],
    tokens: Sequence[int],
    prompt_tokens: int,
) -> dict[str, Any]:
    """Build the aggregate row of one finished request.

    ``lambda`` (the single-sample success rate) is the mean reward when every reward is 0 or 1,
    and ``null`` for real-valued rewards, whose labels come from the reward vector itself.
    """
    binary = all(r in (0.0, 1.0) for r in rewards)
    mean = float(np.mean(rewards)) if rewards else math.nan
    return {
        "id": request.id,
        "prompt": request.prompt,
        "reference": request.reference,
        "tenant": request.tenant,
        "metadata": dict(request.metadata),
        "n_samples": len(rewards),
        "rewards": [float(r) for r in rewards],
        "mean_reward": mean,
        "lambda": mean if binary else None,
        "prompt_tokens": int(prompt_tokens),
        "completion_tokens": int(sum(tokens)),
    }


class DatasetWriter:
    """Appends finished requests to a dataset folder, crash-safely.

    Opening with ``resume=True`` repairs an interrupted run (torn lines, samples of unfinished
    requests) and reports the finished ids; the manifest of an existing dataset must match the
    new one on the fields that change the labels (model, scorer, samples, sampling params).
    """

    RESUME_KEYS = ("model", "scorer", "samples", "params")
    """Manifest fields that must agree for a resumed run to append to the same dataset."""

    def __init__(
        self,
        out: str | os.PathLike[str],
        manifest: Mapping[str, Any],
        *,
        resume: bool,
        requests: Sequence[Request] = (),
    ):
        """Open (or create) the dataset ``out``; see the class docstring.

        ``requests`` (the run's input) are checked against the finished rows before anything is
        written: a finished id whose prompt or reference changed since is refused, because
        resuming would silently keep the old prompt's labels under that id.
        """
        self.path = Path(out)
        self.path.mkdir(parents=True, exist_ok=True)
        existing = _read_manifest(self.path)
        has_rows = (self.path / REQUESTS).exists() and (self.path / REQUESTS).stat().st_size > 0
        if existing is not None or has_rows:
            if not resume:
                raise ConfigError(
                    f"out={str(self.path)!r} already holds a dataset; resume it (the default) "
                    "or pass a new, empty folder"
                )
            if existing is not None:
                for key in self.RESUME_KEYS:
                    if existing.get(key) != manifest.get(key):
                        raise ConfigError(
                            f"cannot resume {str(self.path)!r}: {key} was "
                            f"{existing.get(key)!r}, now {manifest.get(key)!r}; use the same "
                            "settings or a new output folder"
                        )
            if requests:
                self._check_unchanged(requests)
        full = {"format": DATASET_FORMAT, **manifest}
        if existing is not None:
            full["runs"] = [*existing.get("runs", []), *manifest.get("runs", [])]
        tmp = self.path / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(full, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.path / MANIFEST)
        self.finished: frozenset[str] = self._recover()

    def _check_unchanged(self, requests: Sequence[Request]) -> None:
        recorded = {
            str(row["id"]): (row.get("prompt"), row.get("reference"))
            for row in _read_jsonl(self.path / REQUESTS)
            if "id" in row
        }
        changed = [
            r.id for r in requests if r.id in recorded and recorded[r.id] != (r.prompt, r.reference)
        ]
        if changed:
            raise ConfigError(
                f"cannot resume {str(self.path)!r}: {len(changed)} finished requests have a "
                f"different prompt or reference in this input (first id {changed[0]!r}); "
                "give changed requests new ids or use a new output folder"
            )

    def _recover(self) -> frozenset[str]:
        requests, samples = self.path / REQUESTS, self.path / SAMPLES
        _repair(requests)
        _repair(samples)
        finished = frozenset(str(row["id"]) for row in _read_jsonl(requests))
        if samples.exists():
            kept = samples.read_bytes().splitlines(keepends=True)
            clean = [raw for raw in kept if _row_id(raw) in finished]
            if len(clean) != len(kept):
                # Samples of a request interrupted before its commit row: drop them so the
                # retried request does not leave duplicates behind.
                tmp = samples.with_suffix(".jsonl.tmp")
                tmp.write_bytes(b"".join(clean))
                os.replace(tmp, samples)
        return finished

    def append(self, row: Mapping[str, Any], samples: Sequence[Mapping[str, Any]]) -> None:
        """Write one finished request: its samples, then its commit row (one write each)."""
        self._write(SAMPLES, b"".join(_line(s) for s in samples))
        self._write(REQUESTS, _line(row))

    def _write(self, name: str, data: bytes) -> None:
        fd = os.open(self.path / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)


def _row_id(raw: bytes) -> str | None:
    try:
        row = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return str(row.get("id")) if isinstance(row, dict) else None


def _line(row: Mapping[str, Any]) -> bytes:
    return (json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
