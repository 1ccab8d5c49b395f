"""Families answered by picking: yes/no questions and multiple-choice letters.

Half the yes/no questions are true, and the right option's letter is drawn uniformly, so a
model that always says "yes" or "A" is right only by chance.
"""

from __future__ import annotations

import random
import re

from howhard.scoring.choices import option_letter
from howhard.tasks.base import Question
from howhard.tasks.pools import draw_cycling, split_words

__all__ = ["MultipleChoice", "YesNo"]

_CATEGORIES: dict[str, tuple[str, ...]] = {
    "an animal": split_words("dog cat horse cow lion sheep tiger rabbit mouse bear"),
    "a fruit": split_words("apple banana orange grape pear peach cherry lemon mango plum"),
    "a vehicle": split_words("car bus train truck bicycle boat plane taxi tractor scooter"),
    "a color": split_words("red blue green yellow purple pink brown black white orange"),
    "a piece of furniture": split_words("chair table sofa bed desk shelf stool bench"),
}
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _category_item(rng: random.Random, truth: bool) -> tuple[str, str]:
    """A (thing, category) pair that is a true or a false membership."""
    category = rng.choice(sorted(_CATEGORIES))
    if truth:
        return rng.choice(_CATEGORIES[category]), category
    other = rng.choice([c for c in sorted(_CATEGORIES) if c != category])
    thing = rng.choice([t for t in _CATEGORIES[other] if t not in _CATEGORIES[category]])
    return thing, category


class YesNo:
    """Yes/no questions: what kind of thing something is (level 1), which of two numbers is
    larger (2), whether a sum is right or a number is even (3)."""

    name = "yes_no"
    instruction = "Answer yes or no."

    def generate(self, rng: random.Random, n: int) -> list[Question]:
        """Draw up to ``n`` distinct questions, the levels in turn, half of them true."""
        return draw_cycling(self.name, rng, n, self._draw)

    def _draw(self, rng: random.Random, level: int) -> tuple[str, str]:
        truth = rng.random() < 0.5
        stem = self._stem(rng, level, truth)
        return f"{stem} {self.instruction}", "yes" if truth else "no"

    def _stem(self, rng: random.Random, level: int, truth: bool) -> str:
        if level == 1:
            thing, category = _category_item(rng, truth)
            return f"Is {_article(thing)} {category}?"
        if level == 2:
            a, b = rng.sample(range(1, 100), 2)
            word = "greater" if (a > b) == truth else "less"
            return f"Is {a} {word} than {b}?"
        if rng.random() < 0.5:
            a, b = rng.randint(2, 20), rng.randint(2, 20)
            shown = a + b if truth else a + b + rng.choice((-2, -1, 1, 2))
            return f"Is {a} + {b} equal to {shown}?"
        word, value = rng.choice(("even", "odd")), rng.randint(2, 98)
        if ((value % 2 == 0) == (word == "even")) != truth:
            value += 1
        return f"Is {value} an {word} number?"

    def answer(self, reply: str, prompt: str) -> str | None:
        """The first "yes" or "no" in the reply, lower-cased."""
        match = _YES_NO.search(reply)
        return None if match is None else match.group(1).lower()

    def verify(self, reply: str, reference: str, prompt: str) -> bool:
        """The first "yes" or "no" in the reply is the reference."""
        return self.answer(reply, prompt) == reference.lower()


_LETTERS = "ABCD"


class MultipleChoice:
    """Pick the option's letter: two options (level 1), three (2), four (3), about kinds of
    things, sums and products."""

    name = "multiple_choice"
    instruction = "Answer with the letter of the correct option."

    def generate(self, rng: random.Random, n: int) -> list[Question]:
        """Draw up to ``n`` distinct questions, the levels in turn, the right letter uniform."""
        return draw_cycling(self.name, rng, n, self._draw)

    def _draw(self, rng: random.Random, level: int) -> tuple[str, str]:
        stem, right, wrong = self._content(rng, level)
        options = [right, *wrong[:level]]
        rng.shuffle(options)
        listed = " ".join(f"{_LETTERS[i]}) {o}" for i, o in enumerate(options))
        return f"{stem} {listed}. {self.instruction}", _LETTERS[options.index(right)]

    def _content(self, rng: random.Random, level: int) -> tuple[str, str, list[str]]:
        """A question stem, its right answer and at least three distinct wrong ones."""
        kind = rng.randrange(2)
        if kind == 0:
            category = rng.choice(sorted(_CATEGORIES))
            right = rng.choice(_CATEGORIES[category])
            inside = set(_CATEGORIES[category])
            others = sorted({t for ts in _CATEGORIES.values() for t in ts} - inside)
            return f"Which of these is {category}?", right, rng.sample(others, 3)
        if level < 3:
            a, b = rng.randint(1, 9), rng.randint(1, 9)
            stem, value = f"What is {a} + {b}?", a + b
        else:
            a, b = rng.randint(2, 9), rng.randint(2, 9)
            stem, value = f"What is {a} times {b}?", a * b
        offsets = rng.sample([-3, -2, -1, 1, 2, 3], 3)
        return stem, str(value), [str(value + d) for d in offsets]

    def answer(self, reply: str, prompt: str) -> str | None:
        """The option the reply picks, by letter or by naming exactly one option's text."""
        return option_letter(reply, prompt)

    def verify(self, reply: str, reference: str, prompt: str) -> bool:
        """The option the reply picks is the reference letter."""
        return self.answer(reply, prompt) == reference.upper()
