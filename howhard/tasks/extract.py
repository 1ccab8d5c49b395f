"""Answer extraction from chatty model replies.

Small models rarely answer with the bare value ("The sum of 7 and 8 is 15."), so every verifier
first pulls the answer out of the reply. The rules are deterministic and favour explicit answer
phrases ("answer is", "=", "**15**", "is 15") over a bare trailing number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from howhard.scoring.numbers import find_numbers, format_value

__all__ = [
    "digits_for_words",
    "extract_letter",
    "extract_number",
    "first_mention",
    "mentions",
    "number_answer",
]

_NUMBER = r"-?\d+(?:\.\d+)?"
# Ordered by how explicitly they mark an answer; within one pattern the last match wins, since
# step-by-step replies end with the final result.
_NUMBER_PATTERNS = (
    re.compile(rf"answer\s*(?:is|:|=)?\s*\**\s*({_NUMBER})", re.IGNORECASE),
    re.compile(rf"=\s*\**\s*({_NUMBER})"),
    re.compile(rf"\*\*\s*({_NUMBER})\s*\*\*"),
    re.compile(
        rf"\b(?:is|are|equals|makes|gives|has|have|get|gets)\s+\**\s*({_NUMBER})", re.IGNORECASE
    ),
    re.compile(rf"({_NUMBER})"),
)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")


def extract_number(reply: str) -> float | None:
    """Return the number the reply gives as its answer, or ``None`` if it contains none."""
    text = _THOUSANDS.sub("", reply)
    for pattern in _NUMBER_PATTERNS:
        matches = pattern.findall(text)
        if matches:
            return float(matches[-1])
    return None


def number_answer(reply: str) -> str | None:
    """The number the reply gives, formatted canonically so that votes agree (``15`` = ``15.0``)."""
    value = extract_number(reply)
    return None if value is None else f"{value:g}"


def digits_for_words(text: str) -> str:
    """``text`` with each number written in words replaced by its digits ("eight" -> "8")."""
    parts: list[str] = []
    last = 0
    for mention in find_numbers(text):
        if mention.words:
            parts += [text[last : mention.start], format_value(mention.value)]
            last = mention.end
    return "".join([*parts, text[last:]])


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z]){re.escape(phrase)}(?![A-Za-z])", re.IGNORECASE)


def mentions(reply: str, phrase: str) -> bool:
    """Whether ``phrase`` occurs in the reply as a whole word or phrase (case-insensitive)."""
    return _phrase_pattern(phrase).search(reply) is not None


def first_mention(reply: str, candidates: Iterable[str]) -> str | None:
    """The candidate that occurs first in the reply (as a whole word), or ``None``."""
    best: tuple[int, str] | None = None
    for candidate in candidates:
        match = _phrase_pattern(candidate).search(reply)
        if match is not None and (best is None or match.start() < best[0]):
            best = (match.start(), candidate)
    return None if best is None else best[1]


_LETTER_PATTERNS = (
    # Straight and typographic quotes, or bold markers, around a single letter.
    re.compile("[\"'\u201c\u2018*]([A-Za-z])[\"'\u201d\u2019*]"),
    re.compile(r"\bletter\s+(?:is\s+)?([A-Za-z])\b", re.IGNORECASE),
    re.compile(r"\bis\s+([A-Za-z])\b(?:\s*[.!,]|\s*$)", re.IGNORECASE),
    re.compile(r"^\s*([A-Za-z])\s*[.!]?\s*$"),
)


def extract_letter(reply: str) -> str | None:
    """Return the single letter the reply names (quoted, "letter x", "is x"), lower-cased."""
    for pattern in _LETTER_PATTERNS:
        match = pattern.search(reply)
        if match is not None:
            return match.group(1).lower()
    return None
