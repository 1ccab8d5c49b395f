"""Families whose answer is an integer: arithmetic, comparisons, sequences, units, word problems.

Each family draws a question at a designed difficulty level (1 easiest, 3 hardest) and is verified
by comparing the number extracted from the reply (``extract_number``) with the reference.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from howhard.tasks.base import Question
from howhard.tasks.extract import extract_number, number_answer

__all__ = [
    "Addition",
    "Comparison",
    "Multiplication",
    "NextInSequence",
    "Subtraction",
    "UnitConversion",
    "WordProblem",
]

_SUFFIX = "Answer with just the number."
_LEVELS = (1, 2, 3)


@dataclass(frozen=True, slots=True)
class _Draw:
    prompt: str
    answer: int


class _NumericFamily:
    """Shared generation loop and numeric verifier; subclasses implement ``_draw``."""

    name = "numeric"

    def _draw(self, rng: random.Random, level: int) -> _Draw:
        raise NotImplementedError

    def generate(self, rng: random.Random, n: int) -> list[Question]:
        """Draw up to ``n`` distinct questions, cycling through the difficulty levels."""
        seen: set[str] = set()
        out: list[Question] = []
        attempts = 0
        # Small levels have small pools; give up on duplicates after a generous number of tries.
        while len(out) < n and attempts < 50 * n:
            level = _LEVELS[attempts % len(_LEVELS)]
            attempts += 1
            draw = self._draw(rng, level)
            if draw.prompt in seen:
                continue
            seen.add(draw.prompt)
            out.append(
                Question(
                    family=self.name, prompt=draw.prompt, reference=str(draw.answer), level=level
                )
            )
        return out

    def answer(self, reply: str, prompt: str) -> str | None:
        """The extracted number, formatted canonically (``15`` and ``15.0`` agree)."""
        return number_answer(reply)

    def verify(self, reply: str, reference: str, prompt: str) -> bool:
        """Whether the number extracted from ``reply`` equals the reference."""
        value = extract_number(reply)
        return value is not None and any(value == float(ref) for ref in reference.split("|"))


class Addition(_NumericFamily):
    """``a + b``: one digit each (level 1), two digits plus one (2), two digits each (3)."""

    name = "addition"

    def _draw(self, rng: random.Random, level: int) -> _Draw:
        if level == 1:
            a, b = rng.randint(1, 5), rng.randint(1, 4)
        elif level == 2:
            a, b = rng.randint(1, 9), rng.randint(1, 9)
        else:
            a, b = rng.randint(10, 49), rng.randint(1, 9)
        return _Draw(f"What is {a} + {b}? {_SUFFIX}", a + b)


class Subtraction(_NumericFamily):
    """``a - b`` with a non-negative result, graded by the size of the operands."""

    name = "subtraction"

    def _draw(self, rng: random.Random, level: int) -> _Draw:
        if level == 1:
            a = rng.randint(2, 9)
            b = rng.randint(1, min(3, a - 1))
        elif level == 2:
            a = rng.randint(5, 20)
            b = rng.randint(1, 9)
            if b >= a:
                a, b = b + a, b
        else:
            a, b = rng.randint(30, 99), rng.randint(10, 29)
        return _Draw(f"What is {a} - {b}? {_SUFFIX}", a - b)


class Multiplication(_NumericFamily):
    """``a * b``: times 1, 2 or 10 (level 1), single digits (2), two digits by one (3)."""

    name = "multiplication"

    def _draw(self, rng: random.Random, level: int) -> _Draw:
        if level == 1:
            a, b = rng.randint(1, 9), rng.choice((1, 2, 10))
        elif level == 2:
            a, b = rng.randint(2, 9), rng.randint(3, 9)
        else:
            a, b = rng.randint(11, 30), rng.randint(2, 9)
        if rng.random() < 0.5:
            a, b = b, a
        return _Draw(f"What is {a} times {b}? {_SUFFIX}", a * b)


class Comparison(_NumericFamily):
    """Which of two numbers is larger (or smaller): far apart, then closer, then 3 digits."""

    name = "comparison"

    def _draw(self, rng: random.Random, level: int) -> _Draw:
        if level == 1:
            a, b = rng.sample(range(1, 10), 2)
        elif level == 2:
            a, b = rng.sample(range(10, 100), 2)
        else:
            a = rng.randint(100, 989)
            b = a + rng.randint(1, 10) * rng.choice((-1, 1))
        word, answer = ("larger", max(a, b)) if rng.random() < 0.6 else ("smaller", min(a, b))
        return _Draw(f"Which number is {word}: {a} or {b}? {_SUFFIX}", answer)

    def answer(self, reply: str, prompt: str) -> str | None:
        """The option the reply names as larger/smaller, else its stated number."""
        options = [m for m in re.findall(r"-?\d+", prompt.split("?")[0])]
        for pattern in (_NAMED_AS_ANSWER, _ANSWER_NAMED):
            for match in pattern.finditer(reply):
                if match.group(1) in options:
                    return match.group(1)
        return number_answer(reply)

    def verify(self, reply: str, reference: str, prompt: str) -> bool:
        """The option the reply names as the larger (smaller) one is the reference."""
        return self.answer(reply, prompt) == reference


_ORDER_WORD = r"(?:larger|smaller|greater|bigger|lesser|higher|lower|largest|smallest|biggest)"
# "52 is (the) larger (number)" and "the larger number is 52".
_NAMED_AS_ANSWER = re.compile(rf"(-?\d+)\s+is\s+(?:the\s+)?{_ORDER_WORD}", re.IGNORECASE)
_ANSWER_NAMED = re.compile(
    rf"{_ORDER_WORD}(?:\s+(?:number|one|value))?\s+(?:is|would be|:)\s+\**(-?\d+)", re.IGNORECASE
)


class NextInSequence(_NumericFamily):
    """Counting order: the number after ``n`` (level 1), before ``n`` (2), or the next term of a
    progression with step 2, 5 or 10 (3)."""

    name = "sequence"

    def _draw(self, rng: random.Random, level: int) -> _Draw:
        if level == 1:
            n = rng.randint(1, 60)
            return _Draw(f"What number comes right after {n}? {_SUFFIX}", n + 1)
        if level == 2:
            n = rng.randint(2, 60)
            return _Draw(f"What number comes right before {n}? {_SUFFIX}", n - 1)
        step = rng.choice((2, 5, 10))
        start = step * rng.randint(0, 6)
        shown = ", ".join(str(start + i * step) for i in range(4))
        return _Draw(f"What number comes next: {shown}, ...? {_SUFFIX}", start + 4 * step)


_UNITS = (
    # (level, big unit, small unit, factor)
    (1, "week", "days", 7),
    (1, "dozen", "eggs", 12),
    (1, "hour", "minutes", 60),
    (2, "meter", "centimeters", 100),
    (2, "kilogram", "grams", 1000),
    (2, "minute", "seconds", 60),
    (2, "day", "hours", 24),
    (3, "kilometer", "meters", 1000),
    (3, "year", "months", 12),
    (3, "foot", "inches", 12),
    (3, "liter", "milliliters", 1000),
)


class UnitConversion(_NumericFamily):
    """How many small units make ``k`` big units: one unit (level 1), then ``k`` of them."""

    name = "units"

    def _draw(self, rng: random.Random, level: int) -> _Draw:
        options = [u for u in _UNITS if u[0] <= level]
        _, big, small, factor = rng.choice(options)
        count = 1 if level == 1 else rng.randint(2, 4 if level == 2 else 9)
        big_phrase = f"a {big}" if count == 1 else f"{count} {big}s"
        if big == "foot" and count > 1:
            big_phrase = f"{count} feet"
        return _Draw(f"How many {small} are in {big_phrase}? {_SUFFIX}", count * factor)


_NAMES = ("Tom", "Anna", "Sam", "Lily", "Ben", "Mia", "Max", "Emma", "Leo", "Zoe")
_THINGS = ("apples", "books", "cookies", "pencils", "marbles", "stickers", "balls", "cards")


class WordProblem(_NumericFamily):
    """One-step stories: gains (levels 1-2 by size), losses, or equal groups (level 3)."""

    name = "word_problem"

    def _draw(self, rng: random.Random, level: int) -> _Draw:
        name, thing = rng.choice(_NAMES), rng.choice(_THINGS)
        if level == 1:
            a, b = rng.randint(1, 5), rng.randint(1, 4)
            story = (
                f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?"
            )
            return _Draw(f"{story} {_SUFFIX}", a + b)
        if level == 2:
            a, b = rng.randint(5, 12), rng.randint(1, 4)
            story = f"{name} has {a} {thing} and gives away {b}. How many {thing} are left?"
            return _Draw(f"{story} {_SUFFIX}", a - b)
        a, b = rng.randint(2, 5), rng.randint(2, 6)
        story = f"{name} has {a} bags with {b} {thing} in each bag. How many {thing} in total?"
        return _Draw(f"{story} {_SUFFIX}", a * b)
