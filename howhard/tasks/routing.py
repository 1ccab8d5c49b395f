"""The benchmark's routing pair, derived from the collected samples without a second collection.

Weak procedure: one zero-shot sample (1 unit). Strong procedure: self-consistency, a majority
vote over ``k`` samples (``k`` units). Its expected success on each question is computed exactly
from the collected samples (:func:`howhard.evaluation.consistency.majority_vote_curve`) and
written as a dataset whose single reward per request is that expectation, so
``howhard train --head preference --dataset STRONG --weak WEAK`` learns P(strong ≻ weak).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from howhard.evaluation.consistency import majority_vote_curve
from howhard.tasks.answers import read_answers

__all__ = ["write_vote_dataset"]


def write_vote_dataset(dataset: Path, k: int, out: Path) -> int:
    """Write ``out``: ``dataset``'s requests with reward = expected majority-vote@k success.

    Needs ``dataset/answers.jsonl`` (``python -m howhard.tasks answers DATASET``). Returns the
    number of requests written.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1 samples per vote, got {k}")
    manifest: dict[str, Any] = json.loads((dataset / "manifest.json").read_text())
    answers = read_answers(dataset)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for line in (dataset / "requests.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        votes, _ = answers[row["id"]]
        if len(votes) < k:
            raise ValueError(
                f"request {row['id']!r} has {len(votes)} samples; a vote over k={k} needs k"
            )
        success = float(majority_vote_curve(votes, row["rewards"], k)[k])
        rows.append(
            {
                "id": row["id"],
                "prompt": row["prompt"],
                "reference": row.get("reference"),
                "tenant": row.get("tenant", "default"),
                "metadata": row.get("metadata") or {},
                "n_samples": 1,
                "rewards": [success],
                "mean_reward": success,
            }
        )
    derived = {
        **manifest,
        "samples": 1,
        "procedure": f"self-consistency@{k} (expected success over all {k}-subsets)",
        "derived_from": str(dataset),
    }
    (out / "manifest.json").write_text(json.dumps(derived, indent=2, sort_keys=True) + "\n")
    with (out / "requests.jsonl").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(rows)
