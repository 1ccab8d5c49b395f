"""Helpers for families drawn from fixed item pools and answered with one word.

A pool is a list of ``(level, prompt, reference)`` items; a family draws distinct items from it in
a seeded order. Word answers are read as the reply's first *content word*: the first word that is
neither filler ("the", "answer", "is" …) nor repeated from the question — small models restate
the question before answering ("The opposite of hot is cold.").
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

from howhard.tasks.base import Question

__all__ = [
    "FILLER",
    "Item",
    "content_word",
    "content_word_accepted",
    "draw_balanced",
    "draw_cycling",
    "draw_from_pool",
    "split_words",
]


def split_words(words: str) -> tuple[str, ...]:
    """Word lists read better as one string than as a column of quoted literals."""
    return tuple(words.split())


Item = tuple[int, str, str]
"""A pool item: (level, prompt, reference)."""


def draw_from_pool(family: str, pool: Sequence[Item], rng: random.Random, n: int) -> list[Question]:
    """Draw up to ``n`` distinct items from a finite pool, in a seeded random order."""
    items = sorted(set(pool))
    rng.shuffle(items)
    return [
        Question(family=family, prompt=prompt, reference=reference, level=level)
        for level, prompt, reference in items[:n]
    ]


FILLER = frozenset(
    split_words(
        "a an the is are of to it its for word words answer one just name city capital opposite "
        "plural singular form correct called known as simply would be so yes sure here s i m "
        "that this letter letters number"
    )
)
"""Words that never are the answer a word family asks for."""

_TOKEN = re.compile(r"[^\W\d_]+")


def content_word(reply: str, prompt: str) -> str | None:
    """The first word of the reply that is neither filler nor taken from the question."""
    asked = {t.lower() for t in _TOKEN.findall(prompt)}
    for token in _TOKEN.findall(reply):
        lowered = str(token).lower()
        if lowered not in asked and lowered not in FILLER:
            return lowered
    return None


def content_word_accepted(reply: str, reference: str, prompt: str) -> bool:
    """The reply's first content word is one of the ``|``-separated accepted answers."""
    answer = content_word(reply, prompt)
    return answer is not None and answer in reference.lower().split("|")


def draw_cycling(
    family: str,
    rng: random.Random,
    n: int,
    draw: Callable[[random.Random, int], tuple[str, str]],
) -> list[Question]:
    """Draw up to ``n`` distinct questions from a generator, cycling through levels 1, 2, 3.

    ``draw(rng, level)`` returns a (prompt, reference) pair; a repeated prompt is dropped, and
    after ``50 * n`` draws the family gives up (small levels have small pools).
    """
    seen: set[str] = set()
    out: list[Question] = []
    for attempt in range(50 * n):
        if len(out) >= n:
            break
        level = 1 + attempt % 3
        prompt, reference = draw(rng, level)
        if prompt not in seen:
            seen.add(prompt)
            out.append(Question(family=family, prompt=prompt, reference=reference, level=level))
    return out


def draw_balanced(family: str, pool: Sequence[Item], rng: random.Random, n: int) -> list[Question]:
    """Draw up to ``n`` distinct items, taking the levels in turn (1, 2, 3, 1, …).

    For pools whose levels differ a lot in size, so that a large level does not crowd out the
    small ones; a level that runs out leaves its turns to the others.
    """
    by_level: dict[int, list[Item]] = {}
    for item in sorted(set(pool)):
        by_level.setdefault(item[0], []).append(item)
    for items in by_level.values():
        rng.shuffle(items)
    queues = [by_level[level] for level in sorted(by_level)]
    drawn: list[Item] = []
    while len(drawn) < n and any(queues):
        for queue in queues:
            if queue and len(drawn) < n:
                drawn.append(queue.pop())
    return [
        Question(family=family, prompt=prompt, reference=reference, level=level)
        for level, prompt, reference in drawn
    ]
