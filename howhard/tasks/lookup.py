"""Families that recall a fact from a small built-in table: counts, colours, continents.

Levels grade how common the fact is. Word answers are the first name from the family's own
vocabulary (a colour, a continent) that the reply gives and the question does not.
"""

from __future__ import annotations

import random

from howhard.tasks.base import Question
from howhard.tasks.extract import first_mention, mentions
from howhard.tasks.numeric import NumericFamily
from howhard.tasks.pools import Item, draw_balanced

__all__ = ["Colors", "Continents", "CountingFacts"]

_COUNTS: tuple[tuple[int, str, int], ...] = (
    (1, "How many legs does a dog have?", 4), (1, "How many legs does a cat have?", 4),
    (1, "How many legs does a cow have?", 4), (1, "How many legs does a chicken have?", 2),
    (1, "How many legs does a duck have?", 2), (1, "How many legs does a horse have?", 4),
    (1, "How many wheels does a bicycle have?", 2), (1, "How many wheels does a car have?", 4),
    (1, "How many wheels does a tricycle have?", 3), (1, "How many sides does a triangle have?", 3),
    (1, "How many sides does a square have?", 4), (1, "How many days are in a week?", 7),
    (1, "How many fingers are on one hand?", 5), (1, "How many eyes does a person have?", 2),
    (1, "How many legs does a person have?", 2), (1, "How many wheels does a unicycle have?", 1),
    (1, "How many legs does a pig have?", 4), (1, "How many legs does a sheep have?", 4),
    (1, "How many legs does a goat have?", 4), (1, "How many wings does a bird have?", 2),
    (2, "How many legs does a spider have?", 8), (2, "How many legs does an ant have?", 6),
    (2, "How many legs does a bee have?", 6), (2, "How many legs does an insect have?", 6),
    (2, "How many legs does a butterfly have?", 6), (2, "How many sides does a pentagon have?", 5),
    (2, "How many sides does a hexagon have?", 6), (2, "How many sides does an octagon have?", 8),
    (2, "How many sides does a rectangle have?", 4), (2, "How many colors are in a rainbow?", 7),
    (2, "How many continents are there on Earth?", 7),
    (2, "How many planets are in the solar system?", 8),
    (2, "How many players are on a soccer team on the field?", 11),
    (2, "How many legs does a kangaroo have?", 2), (2, "How many legs does a frog have?", 4),
    (2, "How many legs does a snake have?", 0), (2, "How many months are in a year?", 12),
    (2, "How many hours are in a day?", 24), (2, "How many legs does a penguin have?", 2),
    (2, "How many letters are in the English alphabet?", 26),
    (3, "How many legs does a crab have?", 10), (3, "How many arms does an octopus have?", 8),
    (3, "How many arms does a starfish usually have?", 5),
    (3, "How many strings does a guitar usually have?", 6),
    (3, "How many strings does a violin have?", 4), (3, "How many sides does a heptagon have?", 7),
    (3, "How many sides does a decagon have?", 10), (3, "How many sides does a nonagon have?", 9),
    (3, "How many keys does a standard piano have?", 88),
    (3, "How many hearts does an octopus have?", 3),
    (3, "How many teeth does an adult human usually have?", 32),
    (3, "How many bones are in the adult human body?", 206),
    (3, "How many years are in a century?", 100), (3, "How many years are in a decade?", 10),
    (3, "How many cards are in a standard deck without jokers?", 52),
    (3, "How many squares are on a chessboard?", 64),
    (3, "How many players are on a basketball team on the court?", 5),
    (3, "How many days are in a leap year?", 366), (3, "How many weeks are in a year?", 52),
    (3, "How many vowels are in the English alphabet?", 5),
    (3, "How many legs does a scorpion have?", 8), (3, "How many legs does a beetle have?", 6),
    (3, "How many sides does a dodecagon have?", 12),
    (3, "How many minutes are in a day?", 1440),
)  # fmt: skip


class CountingFacts(NumericFamily):
    """Everyday counts recalled from memory: legs, wheels, sides, days …"""

    name = "counting_facts"
    number_words = True

    def generate(self, rng: random.Random, n: int) -> list[Question]:
        """Draw up to ``n`` distinct facts, the levels in turn."""
        pool: list[Item] = [
            (level, f"{question} {self.instruction}", str(count))
            for level, question, count in _COUNTS
        ]
        return draw_balanced(self.name, pool, rng, n)


_COLOR_NAMES = (
    "red", "orange", "yellow", "green", "blue", "purple", "violet", "pink", "brown", "black",
    "white", "gray", "grey", "gold", "silver", "amber",
)  # fmt: skip
_COLORS: tuple[tuple[int, str, str], ...] = (
    (1, "What color is a banana?", "yellow"), (1, "What color is snow?", "white"),
    (1, "What color is grass?", "green"), (1, "What color is the sky on a clear day?", "blue"),
    (1, "What color is coal?", "black"), (1, "What color is a ripe strawberry?", "red"),
    (1, "What color is a ripe tomato?", "red"), (1, "What color is a lemon?", "yellow"),
    (1, "What color is milk?", "white"), (1, "What color is a carrot?", "orange"),
    (1, "What color is a pumpkin?", "orange"), (1, "What color is a frog usually?", "green"),
    (1, "What color is a crow?", "black"), (1, "What color is chocolate?", "brown"),
    (1, "What color is blood?", "red"), (1, "What color is a fire truck?", "red"),
    (2, "What color do you get when you mix blue and yellow?", "green"),
    (2, "What color do you get when you mix red and white?", "pink"),
    (2, "What color do you get when you mix red and yellow?", "orange"),
    (2, "What color do you get when you mix red and blue?", "purple|violet"),
    (2, "What color do you get when you mix black and white?", "gray|grey"),
    (2, "What color is an elephant?", "gray|grey"), (2, "What color is a polar bear?", "white"),
    (2, "What color is a flamingo?", "pink"), (2, "What color is an emerald?", "green"),
    (2, "What color is a ruby?", "red"), (2, "What color is a sapphire usually?", "blue"),
    (2, "What color is a lime?", "green"), (2, "What color is a stop sign?", "red"),
    (2, "What color is a school bus in the United States?", "yellow"),
    (2, "What color is an eggplant?", "purple|violet"), (2, "What color is a cucumber?", "green"),
    (3, "What color is the top light of a traffic light?", "red"),
    (3, "What color is the bottom light of a traffic light?", "green"),
    (3, "What color is the middle light of a traffic light?", "yellow|amber|orange"),
    (3, "What color is a cooked lobster?", "red|orange"),
    (3, "What color is chlorophyll?", "green"),
    (3, "What color is the planet Mars known for?", "red"),
    (3, "What color do plants look because of chlorophyll?", "green"),
    (3, "What color is a raven?", "black"), (3, "What color is a canary usually?", "yellow"),
    (3, "What color is a swan usually?", "white"), (3, "What color is ivory?", "white"),
    (3, "What color is a plum?", "purple|violet"), (3, "What color is cinnamon?", "brown"),
    (3, "What color is a robin's egg?", "blue"), (3, "What color is a walnut shell?", "brown"),
)  # fmt: skip


class Colors:
    """Colours of familiar things (level 1), paint mixes and less common things (2), harder
    recall (3)."""

    name = "colors"
    instruction = "Answer with one word."

    def generate(self, rng: random.Random, n: int) -> list[Question]:
        """Draw up to ``n`` distinct questions, the levels in turn."""
        pool: list[Item] = [
            (level, f"{question} {self.instruction}", color) for level, question, color in _COLORS
        ]
        return draw_balanced(self.name, pool, rng, n)

    def answer(self, reply: str, prompt: str) -> str | None:
        """The first colour the reply names that the question does not ("grey" reads "gray")."""
        asked = {name for name in _COLOR_NAMES if mentions(prompt, name)}
        found = first_mention(reply, [name for name in _COLOR_NAMES if name not in asked])
        return "gray" if found == "grey" else found

    def verify(self, reply: str, reference: str, prompt: str) -> bool:
        """The first colour the reply names, other than those asked about, is accepted."""
        found = self.answer(reply, prompt)
        accepted = {"gray" if c == "grey" else c for c in reference.split("|")}
        return found is not None and found in accepted


_CONTINENT_NAMES = (
    "Africa", "Asia", "Europe", "North America", "South America", "Oceania", "Australia",
    "Antarctica",
)  # fmt: skip
_CONTINENTS: tuple[tuple[int, str, str], ...] = (
    (1, "France", "Europe"), (1, "China", "Asia"), (1, "Brazil", "South America"),
    (1, "Egypt", "Africa"), (1, "Canada", "North America"), (1, "Japan", "Asia"),
    (1, "Italy", "Europe"), (1, "Germany", "Europe"), (1, "India", "Asia"),
    (1, "Spain", "Europe"), (1, "Mexico", "North America"), (1, "Argentina", "South America"),
    (1, "Kenya", "Africa"), (1, "Nigeria", "Africa"), (1, "the United States", "North America"),
    (1, "England", "Europe"), (1, "Thailand", "Asia"),
    (2, "Peru", "South America"), (2, "Chile", "South America"), (2, "Colombia", "South America"),
    (2, "Vietnam", "Asia"), (2, "Poland", "Europe"), (2, "Sweden", "Europe"),
    (2, "Norway", "Europe"), (2, "Ghana", "Africa"), (2, "Ethiopia", "Africa"),
    (2, "Morocco", "Africa"), (2, "Pakistan", "Asia"), (2, "Indonesia", "Asia"),
    (2, "Greece", "Europe"), (2, "Portugal", "Europe"), (2, "Cuba", "North America"),
    (2, "Venezuela", "South America"), (2, "Iran", "Asia"), (2, "Ireland", "Europe"),
    (2, "Tanzania", "Africa"), (2, "the Philippines", "Asia"), (2, "Bolivia", "South America"),
    (2, "New Zealand", "Oceania|Australia"), (2, "Saudi Arabia", "Asia"),
    (3, "Uruguay", "South America"), (3, "Paraguay", "South America"),
    (3, "Ecuador", "South America"), (3, "Guatemala", "North America"),
    (3, "Honduras", "North America"), (3, "Panama", "North America"),
    (3, "Jamaica", "North America"), (3, "Mongolia", "Asia"), (3, "Nepal", "Asia"),
    (3, "Laos", "Asia"), (3, "Cambodia", "Asia"), (3, "Uzbekistan", "Asia"),
    (3, "Madagascar", "Africa"), (3, "Namibia", "Africa"), (3, "Mali", "Africa"),
    (3, "Senegal", "Africa"), (3, "Zambia", "Africa"), (3, "Botswana", "Africa"),
    (3, "Iceland", "Europe"), (3, "Estonia", "Europe"), (3, "Slovenia", "Europe"),
    (3, "Belarus", "Europe"), (3, "Albania", "Europe"), (3, "Fiji", "Oceania|Australia"),
    (3, "Papua New Guinea", "Oceania|Australia"), (3, "Samoa", "Oceania|Australia"),
    (3, "Greenland", "North America"), (3, "Suriname", "South America"),
    (3, "Guyana", "South America"), (3, "Sri Lanka", "Asia"), (3, "Tunisia", "Africa"),
)  # fmt: skip


class Continents:
    """The continent a country is on, graded by how well known the country is."""

    name = "continents"
    instruction = "Answer with just the continent."

    def generate(self, rng: random.Random, n: int) -> list[Question]:
        """Draw up to ``n`` distinct countries, the levels in turn."""
        pool: list[Item] = [
            (level, f"On which continent is {country}? {self.instruction}", continent)
            for level, country, continent in _CONTINENTS
        ]
        return draw_balanced(self.name, pool, rng, n)

    def answer(self, reply: str, prompt: str) -> str | None:
        """The first continent the reply names that the question does not."""
        asked = {name for name in _CONTINENT_NAMES if mentions(prompt, name)}
        return first_mention(reply, [name for name in _CONTINENT_NAMES if name not in asked])

    def verify(self, reply: str, reference: str, prompt: str) -> bool:
        """The first continent the reply names is an accepted one."""
        return self.answer(reply, prompt) in reference.split("|")
