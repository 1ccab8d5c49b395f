"""Families whose answer is an amount with a unit: money in dollars and measured quantities.

The reference carries its unit (``"$7"``, ``"300 centimeters"``). A reply is right when the number
it gives is the reference's and every unit it attaches to that number is the reference's unit
(``"$7"``, ``"7 dollars"``, ``"seven dollars"`` and a bare ``"7"`` pass; ``"7 cents"`` does not).
"""

from __future__ import annotations

import random

from howhard.scoring.numbers import find_numbers, parse_number
from howhard.tasks.extract import extract_number
from howhard.tasks.numeric import Draw, NumericFamily

__all__ = ["Measure", "Money", "QuantityFamily"]


class QuantityFamily(NumericFamily):
    """A numeric family whose reference is an amount with a unit."""

    name = "quantity"
    number_words = True

    def verify(self, reply: str, reference: str, prompt: str) -> bool:
        """The reply's number is the reference's, and no other unit is attached to it."""
        expected = parse_number(reference)
        if expected is None:
            raise ValueError(f"reference must be one amount with a unit, got {reference!r}")
        value = extract_number(self._reply(reply))
        if value is None or value != float(expected.value):
            return False
        units = {m.unit for m in find_numbers(reply) if float(m.value) == value and m.unit}
        return units <= {expected.unit}


_PEOPLE = ("Maya", "Eli", "Sara", "Theo", "Lena", "Omar", "Rosa", "Kai")
_GOODS = (("pen", "ruler"), ("book", "pencil"), ("cap", "scarf"), ("cake", "juice"))


class Money(QuantityFamily):
    """Dollar amounts: the price of two things (level 1), change from a bill (2), several items
    at one price or what is left after two purchases (3)."""

    name = "money"
    instruction = "Give the amount in dollars."

    def _draw(self, rng: random.Random, level: int) -> Draw:
        who = rng.choice(_PEOPLE)
        first, second = rng.choice(_GOODS)
        if level == 1:
            a, b = rng.randint(1, 6), rng.randint(1, 5)
            stem = (
                f"A {first} costs ${a} and a {second} costs ${b}. How much do they cost together?"
            )
            return self._dollars(stem, a + b)
        if level == 2:
            bill = rng.choice((10, 20))
            price = rng.randint(1, bill - 1)
            stem = (
                f"{who} pays for a ${price} {first} with a ${bill} bill. How much change is that?"
            )
            return self._dollars(stem, bill - price)
        if rng.random() < 0.5:
            price, count = rng.randint(2, 9), rng.randint(2, 5)
            stem = f"One ticket costs ${price}. How much do {count} tickets cost?"
            return self._dollars(stem, price * count)
        a, b = rng.randint(2, 6), rng.randint(1, 5)
        money = a + b + rng.randint(1, 9)
        stem = (
            f"{who} has ${money}, buys a {first} for ${a} and a {second} for ${b}. "
            "How much money is left?"
        )
        return self._dollars(stem, money - a - b)

    def _dollars(self, stem: str, amount: int) -> Draw:
        return Draw(f"{stem} {self.instruction}", amount, reference=f"${amount}")


# (unit, sum story, repeat story): {a}/{b} amounts, {k} a count, {u} the unit.
_DIMENSIONS = (
    (
        ("centimeters", "meters", "kilometers"),
        "A red ribbon is {a} {u} long and a blue one is {b} {u} long. How long are they together?",
        "A path is {a} {u} long. How far is it to walk along it {k} times?",
    ),
    (
        ("grams", "kilograms"),
        "A box weighs {a} {u} and a bag weighs {b} {u}. How much do they weigh together?",
        "A bag of flour weighs {a} {u}. How much do {k} such bags weigh?",
    ),
    (
        ("liters", "milliliters"),
        "A jug holds {a} {u} of water and a bottle holds {b} {u}. "
        "How much water do they hold together?",
        "A bottle holds {a} {u}. How much do {k} such bottles hold?",
    ),
    (
        ("minutes", "hours"),
        "Homework takes {a} {u} and reading takes {b} {u}. How long is that in total?",
        "A lesson lasts {a} {u}. How long do {k} lessons last?",
    ),
)
_CONVERSIONS = (
    ("meters", "centimeters", 100),
    ("kilometers", "meters", 1000),
    ("kilograms", "grams", 1000),
    ("liters", "milliliters", 1000),
    ("hours", "minutes", 60),
    ("minutes", "seconds", 60),
)


class Measure(QuantityFamily):
    """Measured amounts with their unit: a sum of two (level 1), a repeated amount (2), or a
    conversion to a smaller unit (3)."""

    name = "measure"
    instruction = "Include the unit in your answer."

    def _draw(self, rng: random.Random, level: int) -> Draw:
        if level == 3:
            big, small, factor = rng.choice(_CONVERSIONS)
            count = rng.randint(2, 9)
            stem = f"How much is {count} {big} in {small}?"
            return self._amount(stem, count * factor, small)
        units, together, repeated = rng.choice(_DIMENSIONS)
        unit = rng.choice(units)
        a, b, k = rng.randint(2, 9), rng.randint(2, 9), rng.randint(2, 4)
        if level == 1:
            return self._amount(together.format(a=a, b=b, u=unit), a + b, unit)
        return self._amount(repeated.format(a=a, k=k, u=unit), a * k, unit)

    def _amount(self, stem: str, amount: int, unit: str) -> Draw:
        return Draw(f"{stem} {self.instruction}", amount, reference=f"{amount} {unit}")
