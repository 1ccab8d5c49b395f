"""The benchmark suite: every family, two seeded builds, and train/val/test splits as JSONL.

Two builds share the families and their verifiers:

* the **core** build (:func:`build_splits`): the first 13 families (:data:`CORE_FAMILIES`), each in
  its own single phrasing — ``data/questions/{train,val,test}.jsonl``;
* the **transfer** build (:func:`build_transfer`): all 29 families (:data:`FAMILIES`), every
  question in a style drawn for it (:mod:`howhard.tasks.styles`) — new phrasings only for the core
  families — for judging a probe on families and phrasings it never saw
  (``data/questions/transfer.jsonl``).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from howhard.tasks.arithmetic import MultiStep, Rounding, TwoStepStory
from howhard.tasks.base import Question, TaskFamily
from howhard.tasks.choices import MultipleChoice, YesNo
from howhard.tasks.formatting import NumberWords, Reverse, Uppercase
from howhard.tasks.language import Alphabet, PastTense, Synonyms
from howhard.tasks.lookup import Colors, Continents, CountingFacts
from howhard.tasks.numeric import (
    Addition,
    Comparison,
    Multiplication,
    NextInSequence,
    Subtraction,
    UnitConversion,
    WordProblem,
)
from howhard.tasks.quantities import Measure, Money
from howhard.tasks.styles import STYLES, restyle
from howhard.tasks.words import Capitals, CountItems, DayAfter, FirstLetter, Opposites, Plurals

__all__ = [
    "ADDED_FAMILIES",
    "CORE_FAMILIES",
    "FAMILIES",
    "SPLITS",
    "build_splits",
    "build_transfer",
    "family",
    "question_id",
    "write_jsonl",
]

CORE_FAMILIES: tuple[TaskFamily, ...] = (
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
"""The core build's families, in a fixed order (the order seeds each family's generator)."""

ADDED_FAMILIES: tuple[TaskFamily, ...] = (
    MultiStep(),
    TwoStepStory(),
    Rounding(),
    Money(),
    Measure(),
    NumberWords(),
    Uppercase(),
    Reverse(),
    YesNo(),
    MultipleChoice(),
    CountingFacts(),
    Colors(),
    Continents(),
    Alphabet(),
    PastTense(),
    Synonyms(),
)
"""Families only the transfer build has: multi-step arithmetic and stories, amounts with units,
formatting, yes/no and multiple choice, lookups, alphabet order and vocabulary."""

FAMILIES: tuple[TaskFamily, ...] = CORE_FAMILIES + ADDED_FAMILIES
"""Every built-in family, core first, in a fixed order."""

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
    families: Sequence[TaskFamily] = CORE_FAMILIES,
) -> dict[str, list[Question]]:
    """Generate the core build and split it into train/val/test of the given ``sizes``.

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


def build_transfer(
    *,
    added: int = 64,
    core: int = 26,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
) -> list[Question]:
    """Generate the transfer build: ``added`` questions per added family, ``core`` per core family.

    Each question gets a style drawn uniformly for it — any of :data:`~howhard.tasks.styles.STYLES`
    for the added families, any but the core build's own phrasing for the core families, among
    those whose answer form its family's verifier reads (:meth:`Style.fits
    <howhard.tasks.styles.Style.fits>`: the core ``letter`` verifier does not read
    ``"Answer: o"``, so its questions never get the ``final`` style) — and a
    split (``metadata["split"]``): each family's questions are dealt to train/val/test in the
    proportions ``fractions``, so in-distribution figures stay computable beside leave-one-family
    -out ones. Families with a small pool contribute fewer. The result is shuffled, so that a
    partial collection still covers every family. Deterministic in ``seed``.
    """
    if len(fractions) != len(SPLITS) or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(
            f"fractions must be three non-negative shares (train, val, test), got {fractions}"
        )
    out: list[Question] = []
    for index, fam in enumerate(FAMILIES):
        rng = random.Random(f"transfer:{seed}:{index}:{fam.name}")
        is_core = index < len(CORE_FAMILIES)
        styles = STYLES[1:] if is_core else STYLES
        questions = fam.generate(rng, core if is_core else added)
        styled = [
            restyle(q, fam, rng.choice([s for s in styles if s.fits(q, fam)])) for q in questions
        ]
        out += _deal(styled, fractions, build="transfer")
    random.Random(f"transfer:{seed}").shuffle(out)
    return out


def _deal(questions: list[Question], fractions: Sequence[float], *, build: str) -> list[Question]:
    """Tag each question with a split, each position going to the split furthest behind."""
    total = sum(fractions)
    counts = dict.fromkeys(SPLITS, 0)
    dealt = []
    for position, q in enumerate(questions, start=1):
        behind = [f * position / total - counts[n] for n, f in zip(SPLITS, fractions, strict=True)]
        split = SPLITS[behind.index(max(behind))]
        counts[split] += 1
        dealt.append(replace(q, metadata={**q.metadata, "build": build, "split": split}))
    return dealt


def write_jsonl(questions: Iterable[Question], path: Path, *, split: str | None = None) -> int:
    """Write questions as the ``collect`` input format; returns the number of rows written.

    ``metadata`` holds the family, level and split (``split``, else the question's own
    ``metadata["split"]``) followed by the question's other metadata (style, build).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as f:
        for q in questions:
            extra = {k: v for k, v in q.metadata.items() if k != "split"}
            row_split = split if split is not None else q.metadata.get("split")
            if row_split not in SPLITS:
                raise ValueError(
                    f"question {question_id(q)} has no split; pass split= or tag it "
                    f"(metadata['split'] in {SPLITS})"
                )
            row: dict[str, Any] = {
                "id": question_id(q),
                "prompt": q.prompt,
                "reference": q.reference,
                "metadata": {"family": q.family, "level": q.level, "split": row_split, **extra},
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count
