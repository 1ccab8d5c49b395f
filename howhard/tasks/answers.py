"""Compact per-sample answers of a collected dataset, for majority votes and token accounting.

``howhard collect`` keeps every sample's text in ``samples.jsonl`` (large); evaluation needs only
each sample's canonical answer (what self-consistency votes on) and its token count. This module
extracts them into ``answers.jsonl`` beside the dataset, one row per finished request, aligned
with the sample order of its ``rewards``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from howhard.tasks.suite import family

__all__ = ["ANSWERS", "read_answers", "read_jsonl", "write_answers"]

ANSWERS = "answers.jsonl"
"""File name of the compact answers, inside the dataset folder."""


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete rows of a JSONL file (a torn last line of an interrupted append is skipped)."""
    rows: list[dict[str, Any]] = []
    with path.open("rb") as f:
        for raw in f:
            if raw.endswith(b"\n"):  # a torn tail of an interrupted append is not a row
                rows.append(json.loads(raw))
    return rows


def write_answers(dataset: Path) -> int:
    """Extract canonical answers from ``dataset/samples.jsonl`` into ``dataset/answers.jsonl``.

    Returns the number of requests written. Requests whose samples are incomplete are skipped.
    """
    requests = read_jsonl(dataset / "requests.jsonl")
    samples: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for row in read_jsonl(dataset / "samples.jsonl"):
        samples[row["id"]][int(row["sample"])] = row
    written = 0
    with (dataset / ANSWERS).open("w", encoding="utf-8") as out:
        for request in requests:
            rows = samples.get(request["id"], {})
            m = len(request["rewards"])
            if len(rows) < m:
                continue
            fam = family(request["metadata"]["family"])
            ordered = [rows[i] for i in range(m)]
            answers = [fam.answer(r["text"], request["prompt"]) for r in ordered]
            tokens = [int(r["tokens"]) for r in ordered]
            line = {"id": request["id"], "answers": answers, "tokens": tokens}
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            written += 1
    return written


def read_answers(dataset: Path) -> dict[str, tuple[list[str | None], list[int]]]:
    """Map request id to (canonical answers, completion tokens) per sample."""
    return {row["id"]: (row["answers"], row["tokens"]) for row in read_jsonl(dataset / ANSWERS)}
