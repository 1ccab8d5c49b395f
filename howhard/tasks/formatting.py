"""Families that ask for a form rather than a fact: numbers in words, capitals, reversed lists.

Their verifiers check the form exactly: ``"42"`` is not ``"forty-two"``, ``"Apple"`` is not
``"APPLE"``, ``"4, 5, 6"`` is not ``"6, 5, 4"``.
"""

from __future__ import annotations

import random
import re

from howhard.scoring.numbers import find_numbers, number_to_words, parse_number
from howhard.scoring.sequences import item_runs, split_list
from howhard.tasks.base import Question
from howhard.tasks.extract import number_answer
from howhard.tasks.pools import Item, draw_balanced, draw_cycling, split_words

__all__ = ["NumberWords", "Reverse", "Uppercase"]


class NumberWords:
    """Numbers between digits and words: a number word in digits (level 1), up to twelve in words
    (2), thirteen to ninety-nine in words (3)."""

    name = "number_words"
    instruction = "Give just the answer."

    def generate(self, rng: random.Random, n: int) -> list[Question]:
        """Draw up to ``n`` distinct numbers, the levels in turn."""
        pool: list[Item] = []
        for value in range(1, 100):
            if value <= 20:
                prompt = f'Write "{number_to_words(value)}" with digits. {self.instruction}'
                pool.append((1, prompt, str(value)))
            level = 2 if value <= 12 else 3
            prompt = f"Write the number {value} in words. {self.instruction}"
            pool.append((level, prompt, number_to_words(value)))
        return draw_balanced(self.name, pool, rng, n)

    def answer(self, reply: str, prompt: str) -> str | None:
        """The number the reply gives in the asked form: digits, or words ("forty-two")."""
        if _ASKS_DIGITS.search(prompt):
            return number_answer(reply)
        for mention in find_numbers(reply):
            if mention.words:
                return number_to_words(int(mention.value))
        return None

    def verify(self, reply: str, reference: str, prompt: str) -> bool:
        """The reply gives the number in the asked form: the first number it writes in digits
        (or in words) is the reference."""
        expected = parse_number(reference)
        if expected is None:
            raise ValueError(f"reference must be a number, got {reference!r}")
        canonical = number_to_words(int(expected.value)) if expected.words else reference
        return self.answer(reply, prompt) == canonical


_ASKS_DIGITS = re.compile(r"\bwith digits\b")
_SHORT = split_words(
    "cat dog sun car hat pen cup bed box egg map bus fox sky ice owl bee jam net pig rug toy "
    "van web"
)
_MEDIUM = split_words(
    "apple house water table chair bread green music horse river plant smile tiger lemon "
    "cloud piano robot train beach candy"
)
_LONG = split_words(
    "elephant umbrella sandwich computer dinosaur hospital mountain butterfly chocolate "
    "triangle birthday airplane vacation treasure kangaroo pineapple strawberry crocodile "
    "notebook adventure"
)
_CAPITAL_WORD = re.compile(r"(?<![A-Za-z])[A-Z]{2,}(?![A-Za-z])")


class Uppercase:
    """Write a word in capital letters: three letters (level 1), five (2), eight or more (3)."""

    name = "uppercase"
    instruction = "Answer with just the word."

    def generate(self, rng: random.Random, n: int) -> list[Question]:
        """Draw up to ``n`` distinct words, the levels in turn."""
        pool: list[Item] = [
            (level, f'Write the word "{word}" in capital letters. {self.instruction}', word.upper())
            for level, words in ((1, _SHORT), (2, _MEDIUM), (3, _LONG))
            for word in words
        ]
        return draw_balanced(self.name, pool, rng, n)

    def answer(self, reply: str, prompt: str) -> str | None:
        """The first word of two or more letters that the reply writes all in capitals."""
        match = _CAPITAL_WORD.search(reply)
        return None if match is None else match.group(0)

    def verify(self, reply: str, reference: str, prompt: str) -> bool:
        """The reply's first all-capitals word is the reference, letter for letter."""
        return self.answer(reply, prompt) == reference


_REVERSIBLE = split_words(
    "red blue green cat dog bird apple pear plum sun moon star one two car bus ship hat shoe sock"
)


class Reverse:
    """Write a short list in reverse order: two numbers counting up (level 1), three (2), three
    words (3)."""

    name = "reverse"
    instruction = "Answer with just the list."

    def generate(self, rng: random.Random, n: int) -> list[Question]:
        """Draw up to ``n`` distinct lists, the levels in turn."""
        return draw_cycling(self.name, rng, n, self._draw)

    def _draw(self, rng: random.Random, level: int) -> tuple[str, str]:
        if level < 3:
            start = rng.randint(1, 30)
            items = [str(start + i) for i in range(level + 1)]
        else:
            items = rng.sample(_REVERSIBLE, 3)
        prompt = f"Write this list in reverse order: {', '.join(items)}. {self.instruction}"
        return prompt, ", ".join(reversed(items))

    def answer(self, reply: str, prompt: str) -> str | None:
        """The first complete list of the prompt's items that the reply gives in a new order."""
        asked = _LIST.search(prompt)
        if asked is None:
            return None
        items = split_list(asked.group(1))
        for run in item_runs(reply, set(items)):
            if len(run) >= len(items) and list(run) != items:
                return ", ".join(run)
        return None

    def verify(self, reply: str, reference: str, prompt: str) -> bool:
        """The reply's first reordered list is the reversed list."""
        return self.answer(reply, prompt) == ", ".join(split_list(reference))


_LIST = re.compile(r"reverse order: (.+?)\.(?:\s|$)")
