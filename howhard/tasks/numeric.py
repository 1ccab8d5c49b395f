"""Families whose answer is an integer: arithmetic, comparisons, sequences, units, word problems.

Each family draws a question at a designed difficulty level (1 easiest, 3 hardest) and is verified
by comparing the number extracted from the reply (``extract_number``) with the reference.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from howhard.tasks.base import Question
from howhard.tasks.extract import digits_for_words, extract_number, number_answer
from howhard.tasks.pools import draw_cycling

__all__ = [
    "Addition",
    "Comparison",
    "Draw",
    "Multiplication",
    "NextInSequence",
    "NumericFamily",
    "Subtraction",
    "UnitConversion",
    "WordProblem",
]

_SUFFIX = "Answer with just the number."


@dataclass(frozen=True, slots=True)
class Draw:
    """One drawn question: its prompt and integer answer."""

    prompt: str
    answer: int
    reference: str | None = None
    """The reference as stored, when it is more than ``str(answer)`` (``"$7"``, ``"7 meters"``)."""


class NumericFamily:
    """Shared generation loop and numeric verifier; subclasses implement ``_draw``."""

    name = "numeric"
    instruction = _SUFFIX
    number_words = False
    """Whether the verifier also reads numbers written in words ("eight legs"); the first
    build's families read digits only, and their collected rewards depend on it."""

    def _reply(self, reply: str) -> str:
        return digits_for_words(reply) if self.number_words else reply

    def _draw(self, rng: random.Random, level: int) -> Draw:
        raise NotImplementedError

    def generate(self, rng: random.Random, n: int) -> list[Question]:
        """Draw up to ``n`` distinct questions, cycling through the difficulty levels."""
        return draw_cycling(self.name, rng, n, self._prompt_and_reference)

    def _prompt_and_reference(self, rng: random.Random, level: int) -> tuple[str, str]:
        draw = self._draw(rng, level)
        return draw.prompt, draw.reference or str(draw.answer)

    def answer(self, reply: str, prompt: str) -> str | None:
        """The extracted number, formatted canonically (``15`` and ``15.0`` agree)."""
        return number_answer(self._reply(reply))

    def verify(self, reply: str, reference: str, prompt: str) -> bool:
        """Whether the number extracted from ``reply`` equals the reference."""
        value = extract_number(self._reply(reply))
        return value is not None and any(value == float(ref) for ref in reference.split("|"))


class Addition(NumericFamily):
    """``a + b``: one digit each (level 1), two digits plus one (2), two digits each (3)."""

    name = "addition"

    def _draw(self, rng: random.Random, level: int) -> Draw:
        if level == 1:
            a, b = rng.randint(1, 5), rng.randint(1, 4)
        elif level == 2:
            a, b = rng.randint(1, 9), rng.randint(1, 9)
        else:
            a, b = rng.randint(10, 49), rng.randint(1, 9)
        return Draw(f"What is {a} + {b}? {_SUFFIX}", a + b)


class Subtraction(NumericFamily):
    """``a - b`` with a non-negative result, graded by the size of the operands."""

    name = "subtraction"

    def _draw(self, rng: random.Random, level: int) -> Draw:
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
        return Draw(f"What is {a} - {b}? {_SUFFIX}", a - b)


class Multiplication(NumericFamily):
    """``a * b``: times 1, 2 or 10 (level 1), single digits (2), two digits by one (3)."""

    name = "multiplication"

    def _draw(self, rng: random.Random, level: int) -> Draw:
        if level == 1:
            a, b = rng.randint(1, 9), rng.choice((1, 2, 10))
        elif level == 2:
            a, b = rng.randint(2, 9), rng.randint(3, 9)
        else:
            a, b = rng.randint(11, 30), rng.randint(2, 9)
        if rng.random() < 0.5:
            a, b = b, a
        return Draw(f"What is {a} times {b}? {_SUFFIX}", a * b)


class Comparison(NumericFamily):
    """Which of two numbers is larger (or smaller): far apart, then closer, then 3 digits."""

    name = "comparison"

    def _draw(self, rng: random.Random, level: int) -> Draw:
        if level == 1:
            a, b = rng.sample(range(1, 10), 2)
        elif level == 2:
            a, b = rng.sample(range(10, 100), 2)
        else:
            a = rng.randint(100, 989)
            b = a + rng.randint(1, 10) * rng.choice((-1, 1))
        word, answer = ("larger", max(a, b)) if rng.random() < 0.6 else ("smaller", min(a, b))
        return Draw(f"Which number is {word}: {a} or {b}? {_SUFFIX}", answer)

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


class NextInSequence(NumericFamily):
    """Counting order: the number after ``n`` (level 1), before ``n`` (2), or the next term of a
    progression with step 2, 5 or 10 (3)."""

    name = "sequence"

    def _draw(self, rng: random.Random, level: int) -> Draw:
        if level == 1:
            n = rng.randint(1, 60)
            return Draw(f"What number comes right after {n}? {_SUFFIX}", n + 1)
        if level == 2:
            n = rng.randint(2, 60)
            return Draw(f"What number comes right before {n}? {_SUFFIX}", n - 1)
        step = rng.choice((2, 5, 10))
        start = step * rng.randint(0, 6)
        shown = ", ".join(str(start + i * step) for i in range(4))
        return Draw(f"What number comes next: {shown}, ...? {_SUFFIX}", start + 4 * step)


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


class UnitConversion(NumericFamily):
    """How many small units make ``k`` big units: one unit (level 1), then ``k`` of them."""

    name = "units"

    def _draw(self, rng: random.Random, level: int) -> Draw:
        options = [u for u in _UNITS if u[0] <= level]
        _, big, small, factor = rng.choice(options)
        count = 1 if level == 1 else rng.randint(2, 4 if level == 2 else 9)
        big_phrase = f"a {big}" if count == 1 else f"{count} {big}s"
        if big == "foot" and count > 1:
            big_phrase = f"{count} feet"
        return Draw(f"How many {small} are in {big_phrase}? {_SUFFIX}", count * factor)


_NAMES = ("Tom", "Anna", "Sam", "Lily", "Ben", "Mia", "Max", "Emma", "Leo", "Zoe")
_THINGS = ("apples", "books", "cookies", "pencils", "marbles", "stickers", "balls", "cards")


class WordProblem(NumericFamily):
    """One-step stories: gains (levels 1-2 by size), losses, or equal groups (level 3)."""

    name = "word_problem"

    def _draw(self, rng: random.Random, level: int) -> Draw:
        name, thing = rng.choice(_NAMES), rng.choice(_THINGS)
        if level == 1:
            a, b = rng.randint(1, 5), rng.randint(1, 4)
            story = (
                f"{name} has {a} {thing} and gets {b} more. How many {thing} does {name} have now?"
            )
            return Draw(f"{story} {_SUFFIX}", a + b)
        if level == 2:
            a, b = rng.randint(5, 12), rng.randint(1, 4)
            story = f"{name} has {a} {thing} and gives away {b}. How many {thing} are left?"
            return Draw(f"{story} {_SUFFIX}", a - b)
        a, b = rng.randint(2, 5), rng.randint(2, 6)
        story = f"{name} has {a} bags with {b} {thing} in each bag. How many {thing} in total?"
        return Draw(f"{story} {_SUFFIX}", a * b)
