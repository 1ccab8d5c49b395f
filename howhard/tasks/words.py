"""Families whose answer is a word or a letter: spelling, calendar and everyday knowledge.

Pools are fixed lists graded by how short, common or regular the item is; a family draws distinct
questions from its pool, so a small pool caps how many questions the family can contribute.
"""

from __future__ import annotations

import random

from howhard.tasks.base import Question
from howhard.tasks.extract import (
    extract_letter,
    extract_number,
    first_mention,
    mentions,
    number_answer,
)
from howhard.tasks.pools import (
    Item,
    content_word,
    content_word_accepted,
    draw_cycling,
    draw_from_pool,
    split_words,
)

__all__ = [
    "Capitals",
    "CountItems",
    "DayAfter",
    "FirstLetter",
    "Opposites",
    "Plurals",
]


_WORDS = split_words(
    "cat dog sun car hat pen cup bed box egg map bus fox red sky ice "
    "tree fish bird milk rain book door ball cake frog lamp moon star ship snow "
    "apple house water table chair bread green music horse river plant smile "
    "garden pencil yellow orange window friend doctor school flower basket summer "
    "chicken kitchen picture morning blanket library teacher monkey elephant holiday"
)


def _any_mentioned(reply: str, reference: str) -> bool:
    return any(mentions(reply, answer) for answer in reference.split("|"))


_FRUITS = split_words("apple banana cherry grape lemon mango orange peach pear plum melon kiwi")


class CountItems:
    """How many items a short list names: 1-3 items (level 1), 4-5 (2), 6-8 (3)."""

    name = "count_items"
    instruction = "Answer with just the number."

    def generate(self, rng: random.Random, n: int) -> list[Question]:
        """Draw up to ``n`` distinct lists of fruit names."""
        return draw_cycling(self.name, rng, n, self._draw)

    def _draw(self, rng: random.Random, level: int) -> tuple[str, str]:
        size = rng.randint(*((1, 3), (4, 5), (6, 8))[level - 1])
        items = ", ".join(rng.sample(_FRUITS, size))
        return f"How many fruits are in this list: {items}? {self.instruction}", str(size)

    def answer(self, reply: str, prompt: str) -> str | None:
        """The number the reply gives."""
        return number_answer(reply)

    def verify(self, reply: str, reference: str, prompt: str) -> bool:
        """The number in the reply equals the list's length."""
        value = extract_number(reply)
        return value is not None and value == float(reference)


class FirstLetter:
    """The first (level 1), last (level 2) or second (level 3) letter of a word."""

    name = "letter"
    instruction = "Answer with just the letter."

    def generate(self, rng: random.Random, n: int) -> list[Question]:
        """Draw up to ``n`` distinct (word, position) questions."""
        pool: list[Item] = []
        for w in _WORDS:
            for level, position, letter in (
                (1, "first", w[0]),
                (2, "last", w[-1]),
                (3, "second", w[1]),
            ):
                prompt = f'What is the {position} letter of the word "{w}"? {self.instruction}'
                pool.append((level, prompt, letter))
        return draw_from_pool(self.name, pool, rng, n)

    def answer(self, reply: str, prompt: str) -> str | None:
        """The single letter the reply names."""
        return extract_letter(reply)

    def verify(self, reply: str, reference: str, prompt: str) -> bool:
        """The single letter named in the reply equals the reference."""
        return extract_letter(reply) == reference.lower()


_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


class DayAfter:
    """Calendar order: the day after (level 1), the month after (2), the day or month before (3)."""

    name = "calendar"
    instruction = "Answer with one word."

    def generate(self, rng: random.Random, n: int) -> list[Question]:
        """Draw up to ``n`` distinct day/month questions."""
        pool: list[Item] = []
        for names, unit, level_after in ((_DAYS, "day", 1), (_MONTHS, "month", 2)):
            k = len(names)
            for i, current in enumerate(names):
                suffix = self.instruction
                pool.append(
                    (
                        level_after,
                        f"What {unit} comes after {current}? {suffix}",
                        names[(i + 1) % k],
                    )
                )
                pool.append(
                    (3, f"What {unit} comes before {current}? {suffix}", names[(i - 1) % k])
                )
        return draw_from_pool(self.name, pool, rng, n)

    def answer(self, reply: str, prompt: str) -> str | None:
        """The first day or month named in the reply, other than the one asked about."""
        asked = {name for name in (*_DAYS, *_MONTHS) if mentions(prompt, name)}
        return first_mention(reply, [name for name in (*_DAYS, *_MONTHS) if name not in asked])

    def verify(self, reply: str, reference: str, prompt: str) -> bool:
        """The first day or month named in the reply, other than the one asked about, is right."""
        return self.answer(reply, prompt) == reference


_CAPITALS: tuple[tuple[int, str, str], ...] = (
    (1, "France", "Paris"), (1, "Japan", "Tokyo"), (1, "Italy", "Rome"), (1, "Germany", "Berlin"),
    (1, "Spain", "Madrid"), (1, "England", "London"), (1, "the United Kingdom", "London"),
    (1, "Russia", "Moscow"), (1, "China", "Beijing"), (1, "Egypt", "Cairo"),
    (1, "Greece", "Athens"), (1, "Ireland", "Dublin"),
    (1, "Portugal", "Lisbon"), (1, "Austria", "Vienna"), (1, "Norway", "Oslo"),
    (1, "South Korea", "Seoul"), (1, "Thailand", "Bangkok"), (1, "Argentina", "Buenos Aires"),
    (2, "Canada", "Ottawa"), (2, "Australia", "Canberra"), (2, "Brazil", "Brasília|Brasilia"),
    (2, "India", "New Delhi|Delhi"), (2, "Sweden", "Stockholm"), (2, "Denmark", "Copenhagen"),
    (2, "Finland", "Helsinki"), (2, "Poland", "Warsaw"), (2, "the Netherlands", "Amsterdam"),
    (2, "Belgium", "Brussels"), (2, "Hungary", "Budapest"), (2, "the Czech Republic", "Prague"),
    (2, "Kenya", "Nairobi"), (2, "Peru", "Lima"), (2, "Chile", "Santiago"), (2, "Cuba", "Havana"),
    (2, "Iran", "Tehran"), (2, "Iraq", "Baghdad"), (2, "Ukraine", "Kyiv|Kiev"),
    (2, "Indonesia", "Jakarta"), (2, "the Philippines", "Manila"), (2, "Vietnam", "Hanoi"),
    (2, "Colombia", "Bogotá|Bogota"), (2, "Venezuela", "Caracas"), (2, "Switzerland", "Bern|Berne"),
    (3, "Turkey", "Ankara"), (3, "Nigeria", "Abuja"), (3, "Pakistan", "Islamabad"),
    (3, "New Zealand", "Wellington"), (3, "South Africa", "Pretoria|Cape Town|Bloemfontein"),
    (3, "Morocco", "Rabat"), (3, "Romania", "Bucharest"), (3, "Bulgaria", "Sofia"),
    (3, "Serbia", "Belgrade"), (3, "Croatia", "Zagreb"), (3, "Slovakia", "Bratislava"),
    (3, "Slovenia", "Ljubljana"), (3, "Lithuania", "Vilnius"), (3, "Latvia", "Riga"),
    (3, "Estonia", "Tallinn"), (3, "Iceland", "Reykjavik|Reykjavík"),
    (3, "Ethiopia", "Addis Ababa"),
    (3, "Ghana", "Accra"), (3, "Algeria", "Algiers"), (3, "Tunisia", "Tunis"),
    (3, "Saudi Arabia", "Riyadh"), (3, "Syria", "Damascus"), (3, "Lebanon", "Beirut"),
    (3, "Jordan", "Amman"), (3, "Afghanistan", "Kabul"), (3, "Bangladesh", "Dhaka"),
    (3, "Nepal", "Kathmandu"), (3, "Sri Lanka", "Colombo|Sri Jayawardenepura Kotte"),
    (3, "Malaysia", "Kuala Lumpur"),
    (3, "Mongolia", "Ulaanbaatar|Ulan Bator"),
    (3, "Ecuador", "Quito"), (3, "Bolivia", "Sucre|La Paz"), (3, "Uruguay", "Montevideo"),
    (3, "Paraguay", "Asunción|Asuncion"), (3, "Jamaica", "Kingston"), (3, "Zimbabwe", "Harare"),
    (3, "Uganda", "Kampala"), (3, "Tanzania", "Dodoma"), (3, "Senegal", "Dakar"),
    (3, "Qatar", "Doha"), (3, "Kazakhstan", "Astana"), (3, "Georgia", "Tbilisi"),
    (3, "Armenia", "Yerevan"), (3, "Cambodia", "Phnom Penh"), (3, "Laos", "Vientiane"),
)  # fmt: skip


class Capitals:
    """Capital cities, graded by how famous the country and its capital are."""

    name = "capitals"
    instruction = "Answer with just the city name."

    def generate(self, rng: random.Random, n: int) -> list[Question]:
        """Draw up to ``n`` distinct countries."""
        pool = [
            (level, f"What is the capital of {country}? {self.instruction}", city)
            for level, country, city in _CAPITALS
        ]
        return draw_from_pool(self.name, pool, rng, n)

    def answer(self, reply: str, prompt: str) -> str | None:
        """The first content word of the reply that the question does not contain."""
        return content_word(reply, prompt)

    def verify(self, reply: str, reference: str, prompt: str) -> bool:
        """An accepted capital is named in the reply."""
        return _any_mentioned(reply, reference)


_OPPOSITES: tuple[tuple[int, str, str], ...] = (
    (1, "hot", "cold"), (1, "up", "down"), (1, "big", "small|little"), (1, "yes", "no"),
    (1, "day", "night"), (1, "black", "white"), (1, "good", "bad"), (1, "happy", "sad|unhappy"),
    (1, "open", "closed|close|shut"), (1, "fast", "slow"), (1, "in", "out"), (1, "left", "right"),
    (1, "old", "new|young"), (1, "on", "off"), (1, "tall", "short"), (1, "wet", "dry"),
    (2, "light", "dark|heavy"), (2, "early", "late"), (2, "full", "empty"),
    (2, "hard", "soft|easy"),
    (2, "rich", "poor"), (2, "strong", "weak"), (2, "true", "false"), (2, "love", "hate"),
    (2, "win", "lose"), (2, "push", "pull"), (2, "buy", "sell"), (2, "first", "last"),
    (2, "high", "low"), (2, "clean", "dirty"), (2, "near", "far"), (2, "thick", "thin"),
    (2, "top", "bottom"), (2, "begin", "end|finish"), (2, "before", "after"),
    (2, "above", "below|under"),
    (2, "inside", "outside"), (2, "give", "take|receive"), (2, "loud", "quiet|soft"),
    (2, "friend", "enemy|foe"), (2, "arrive", "leave|depart"),
    (3, "ancient", "modern"), (3, "brave", "cowardly|afraid|scared"), (3, "shallow", "deep"),
    (3, "cheap", "expensive"), (3, "generous", "stingy|selfish|greedy"), (3, "maximum", "minimum"),
    (3, "include", "exclude"), (3, "victory", "defeat|loss"), (3, "increase", "decrease"),
    (3, "accept", "reject|refuse|decline"), (3, "polite", "rude|impolite"),
    (3, "success", "failure"),
    (3, "temporary", "permanent"), (3, "visible", "invisible"), (3, "import", "export"),
    (3, "guilty", "innocent"), (3, "majority", "minority"), (3, "entrance", "exit"),
    (3, "frequent", "rare|infrequent"), (3, "vertical", "horizontal"), (3, "private", "public"),
    (3, "simple", "complex|complicated|difficult"), (3, "wide", "narrow"), (3, "wild", "tame"),
    (3, "sharp", "dull|blunt"), (3, "asleep", "awake"), (3, "borrow", "lend"),
    (3, "forget", "remember"), (3, "smooth", "rough"), (3, "sweet", "sour|bitter"),
)  # fmt: skip


class Opposites:
    """Antonyms of everyday words, graded by word frequency."""

    name = "opposites"
    instruction = "Answer with one word."

    def generate(self, rng: random.Random, n: int) -> list[Question]:
        """Draw up to ``n`` distinct words."""
        pool = [
            (level, f'What is the opposite of "{word}"? {self.instruction}', answer)
            for level, word, answer in _OPPOSITES
        ]
        return draw_from_pool(self.name, pool, rng, n)

    def answer(self, reply: str, prompt: str) -> str | None:
        """The first content word of the reply that the question does not contain."""
        return content_word(reply, prompt)

    def verify(self, reply: str, reference: str, prompt: str) -> bool:
        """An accepted antonym is named in the reply. (the reply's first content word)."""
        return content_word_accepted(reply, reference, prompt)


_REGULAR = split_words(
    "cat dog book car tree bird cup hat pen girl boy star door lamp chair apple river"
)
_ES = split_words("box bus fox dish church watch glass class brush wish kiss match beach lunch")
_IES = split_words("baby city lady party story berry puppy cherry family country fly pony")
_IRREGULAR = (
    ("mouse", "mice"), ("child", "children"), ("man", "men"), ("woman", "women"),
    ("tooth", "teeth"), ("foot", "feet"), ("goose", "geese"), ("person", "people"),
    ("ox", "oxen"), ("leaf", "leaves"), ("knife", "knives"), ("wolf", "wolves"),
    ("half", "halves"), ("life", "lives"), ("loaf", "loaves"), ("cactus", "cacti|cactuses"),
    ("wife", "wives"), ("shelf", "shelves"), ("potato", "potatoes"), ("tomato", "tomatoes"),
    ("hero", "heroes"), ("thief", "thieves"), ("calf", "calves"), ("louse", "lice"),
)  # fmt: skip


class Plurals:
    """Plural forms: regular ``-s`` (level 1), ``-es``/``-ies`` (2), irregular (3)."""

    name = "plurals"
    instruction = "Answer with one word."

    def generate(self, rng: random.Random, n: int) -> list[Question]:
        """Draw up to ``n`` distinct nouns."""
        items: list[tuple[int, str, str]] = [(1, w, w + "s") for w in _REGULAR]
        items += [(2, w, w + "es") for w in _ES]
        items += [(2, w, w[:-1] + "ies") for w in _IES]
        items += [(3, w, plural) for w, plural in _IRREGULAR]
        pool = [
            (level, f'What is the plural of "{word}"? {self.instruction}', plural)
            for level, word, plural in items
        ]
        return draw_from_pool(self.name, pool, rng, n)

    def answer(self, reply: str, prompt: str) -> str | None:
        """The first content word of the reply that the question does not contain."""
        return content_word(reply, prompt)

    def verify(self, reply: str, reference: str, prompt: str) -> bool:
        """The plural form is named in the reply. (the reply's first content word)."""
        return content_word_accepted(reply, reference, prompt)
