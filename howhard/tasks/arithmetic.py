"""Families that take more than one step: chained arithmetic, two-step stories, rounding.

They answer with an integer like the first build's numeric families, but their verifiers also
read numbers written in words ("Tom has seven stamps.").
"""

from __future__ import annotations

import random

from howhard.tasks.numeric import Draw, NumericFamily

__all__ = ["MultiStep", "Rounding", "TwoStepStory"]


class MultiStep(NumericFamily):
    """Chained arithmetic: three small addends (level 1), a sum then a difference (2), a product
    then a sum (3)."""

    name = "multi_step"
    number_words = True

    def _draw(self, rng: random.Random, level: int) -> Draw:
        if level == 1:
            a, b, c = rng.randint(1, 4), rng.randint(1, 4), rng.randint(1, 3)
            return Draw(f"What is {a} + {b} + {c}? {self.instruction}", a + b + c)
        if level == 2:
            a, b = rng.randint(2, 9), rng.randint(2, 9)
            c = rng.randint(1, min(a + b - 1, 9))
            return Draw(f"What is {a} + {b} - {c}? {self.instruction}", a + b - c)
        a, b, c = rng.randint(2, 5), rng.randint(2, 5), rng.randint(1, 9)
        return Draw(f"What is {a} * {b} + {c}? {self.instruction}", a * b + c)


_PEOPLE = ("Ava", "Noah", "Ella", "Jack", "Ruby", "Owen", "Ivy", "Finn", "Nora", "Luke")
_ITEMS = ("stamps", "shells", "coins", "beads", "crayons", "buttons", "candies", "toys")


class TwoStepStory(NumericFamily):
    """Word problems in two steps: two gains (level 1), a gain then a loss (2), packs bought then
    some given away (3)."""

    name = "story_two_step"
    number_words = True

    def _draw(self, rng: random.Random, level: int) -> Draw:
        who, what = rng.choice(_PEOPLE), rng.choice(_ITEMS)
        if level == 1:
            a, b, c = rng.randint(1, 4), rng.randint(1, 3), rng.randint(1, 3)
            story = (
                f"{who} has {a} {what}. {who} finds {b} more and then gets {c} more. "
                f"How many {what} does {who} have now?"
            )
            return Draw(f"{story} {self.instruction}", a + b + c)
        if level == 2:
            a, b = rng.randint(3, 9), rng.randint(1, 5)
            c = rng.randint(1, a + b - 1)
            story = (
                f"{who} has {a} {what}, gets {b} more and then gives away {c}. "
                f"How many {what} does {who} have now?"
            )
            return Draw(f"{story} {self.instruction}", a + b - c)
        packs, size = rng.randint(2, 4), rng.randint(2, 5)
        lost = rng.randint(1, packs * size - 1)
        story = (
            f"{who} buys {packs} packs of {what} with {size} in each pack and gives away {lost}. "
            f"How many {what} does {who} have left?"
        )
        return Draw(f"{story} {self.instruction}", packs * size - lost)


class Rounding(NumericFamily):
    """Rounding to the nearest ten (level 1), hundred (2), or a decimal to a whole number (3);
    never a tie."""

    name = "rounding"
    number_words = True

    def _draw(self, rng: random.Random, level: int) -> Draw:
        if level == 1:
            n = rng.choice([k for k in range(11, 100) if k % 10 not in (0, 5)])
            return Draw(f"Round {n} to the nearest ten. {self.instruction}", 10 * round(n / 10))
        if level == 2:
            n = rng.choice([k for k in range(101, 1000) if k % 100 not in (0, 50)])
            answer = 100 * round(n / 100)
            return Draw(f"Round {n} to the nearest hundred. {self.instruction}", answer)
        whole, tenth = rng.randint(1, 20), rng.choice((1, 2, 3, 4, 6, 7, 8, 9))
        answer = whole + (1 if tenth > 5 else 0)
        return Draw(
            f"Round {whole}.{tenth} to the nearest whole number. {self.instruction}", answer
        )
