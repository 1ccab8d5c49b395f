"""The benchmark suite: every family, a seeded build, and train/val/test splits as JSONL."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from howhard.tasks.base import Question, TaskFamily
from howhard.tasks.numeric import (
    Addition,
    Comparison,
    Multiplication,
    NextInSequence,
    Subtraction,
    UnitConversion,
    WordProblem,
)
from howhard.tasks.words import Capitals, CountItems, DayAfter, FirstLetter, Opposites, Plurals

__all__ = ["FAMILIES", "SPLITS", "build_splits", "family", "question_id", "write_jsonl"]

FAMILIES: tuple[TaskFamily, ...] = (
    Addition(),
    Subtraction(),
    Multiplication(),
    Comparison(),
    NextInSequence(),
    UnitConversion(),
    WordProblem(),
    CountItems(),
    FirstLetter(),
    DayAfter(),
    Capitals(),
    Opposites(),
    Plurals(),
)
"""Every built-in family, in a fixed order (the order seeds each family's generator)."""

SPLITS: tuple[str, ...] = ("train", "val", "test")

_BY_NAME = {f.name: f for f in FAMILIES}


def family(name: str) -> TaskFamily:
    """Look up a built-in family by name."""
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(_BY_NAME))
        raise ValueError(f"family must be one of {known}; got {name!r}") from None


def question_id(question: Question) -> str:
    """A stable id derived from the question's family and prompt."""
    digest = hashlib.sha1(question.key.encode()).hexdigest()[:10]
    return f"{question.family}-{digest}"


def build_splits(
    sizes: Sequence[int] = (900, 300, 300),
    *,
    seed: int = 0,
    families: Sequence[TaskFamily] = FAMILIES,
) -> dict[str, list[Question]]:
    """Generate the suite and split it into train/val/test of the given ``sizes``.

    Each family contributes an equal share (fewer if its pool is exhausted, the rest filled by the
    families with room); each family's questions are spread over the splits in the same
    proportions, so every split covers the same mix of families and levels. Deterministic in
    ``seed``.
    """
    if len(sizes) != len(SPLITS) or any(s < 0 for s in sizes):
        raise ValueError(f"sizes must be three non-negative counts (train, val, test), got {sizes}")
    total = sum(sizes)
    pools: list[list[Question]] = []
    for index, fam in enumerate(families):
        rng = random.Random(f"{seed}:{index}:{fam.name}")
        pools.append(fam.generate(rng, total))
    quotas = _fair_quotas([len(p) for p in pools], total)
    # Families stay contiguous and each position goes to the split furthest behind its share, so
    # the totals are exact and every split gets the same mix of families and levels.
    ordered = [q for pool, quota in zip(pools, quotas, strict=True) for q in pool[:quota]]
    splits: dict[str, list[Question]] = {name: [] for name in SPLITS}
    for position, question in enumerate(ordered, start=1):
        behind = [
            size * position / total - len(splits[name])
            for name, size in zip(SPLITS, sizes, strict=True)
        ]
        splits[SPLITS[behind.index(max(behind))]].append(question)
    for name in SPLITS:
        random.Random(f"{seed}:{name}").shuffle(splits[name])
    return splits


def _fair_quotas(available: list[int], total: int) -> list[int]:
    """Split ``total`` as evenly as possible across pools, never past a pool's size."""
    quotas = [0] * len(available)
    remaining = total
    open_pools = [i for i, a in enumerate(available) if a > 0]
    while remaining > 0 and open_pools:
        share = max(1, remaining // len(open_pools))
        for i in list(open_pools):
            take = min(share, available[i] - quotas[i], remaining)
            quotas[i] += take
            remaining -= take
            if quotas[i] >= available[i]:
                open_pools.remove(i)
            if remaining == 0:
                break
    return quotas


def write_jsonl(questions: Iterable[Question], path: Path, *, split: str) -> int:
    """Write questions as the ``collect`` input format; returns the number of rows written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as f:
        for q in questions:
            row: dict[str, Any] = {
                "id": question_id(q),
                "prompt": q.prompt,
                "reference": q.reference,
                "metadata": {"family": q.family, "level": q.level, "split": split},
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count
