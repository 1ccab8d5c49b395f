"""Numbers as replies state them: digits with separators, fractions, number words and units.

:func:`find_numbers` lists every number a text states, in order, with its exact value
(:class:`~fractions.Fraction`, so ``0.1 + 0.2`` style float noise never decides a verdict), whether
it was written in words (``"forty-two"``) and the unit attached to it (``"$8"``, ``"8 dollars"``,
``"2 km"``), canonicalised so that spellings of one unit agree. :func:`number_to_words` writes an
integer the way an English reply would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "NumberMention",
    "find_numbers",
    "format_value",
    "number_to_words",
    "parse_number",
    "unit_of",
]

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)  # fmt: skip
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_UNIT_WORDS = {word: value for value, word in enumerate(_ONES)}
_TENS_WORDS = {word: 20 + 10 * i for i, word in enumerate(_TENS)}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000}
_NUMBER_WORDS = {*_UNIT_WORDS, *_TENS_WORDS, *_SCALES}

# A word before "one" that makes it a pronoun ("the larger one", "each one"), not the number 1.
_PRONOUN_ONE_BEFORE = frozenset((
    "the", "this", "that", "each", "every", "any", "no", "which", "another", "other", "larger",
    "smaller", "bigger", "biggest", "largest", "smallest", "right", "correct", "wrong", "first",
    "last", "next", "only", "same", "new", "old", "one",
))  # fmt: skip
_PRONOUN_ONE_AFTER = frozenset(("of", "another", "by"))

# Spellings of a unit -> its canonical name. Single letters that are common words ("a", "in")
# are left out: a unit must not be read into ordinary prose.
_UNIT_SPELLINGS: dict[str, tuple[str, ...]] = {
    "dollar": ("$", "dollar", "dollars", "usd", "buck", "bucks"),
    "cent": ("¢", "cent", "cents"),
    "euro": ("€", "euro", "euros", "eur"),
    "pound": ("£", "pound", "pounds", "gbp", "lb", "lbs"),
    "millimeter": ("mm", "millimeter", "millimeters", "millimetre", "millimetres"),
    "centimeter": ("cm", "centimeter", "centimeters", "centimetre", "centimetres"),
    "meter": ("m", "meter", "meters", "metre", "metres"),
    "kilometer": ("km", "kilometer", "kilometers", "kilometre", "kilometres"),
    "inch": ("inch", "inches"),
    "foot": ("ft", "foot", "feet"),
    "yard": ("yd", "yard", "yards"),
    "mile": ("mi", "mile", "miles"),
    "milligram": ("mg", "milligram", "milligrams"),
    "gram": ("g", "gram", "grams"),
    "kilogram": ("kg", "kgs", "kilogram", "kilograms", "kilo", "kilos"),
    "ounce": ("oz", "ounce", "ounces"),
    "ton": ("ton", "tons", "tonne", "tonnes"),
    "milliliter": ("ml", "milliliter", "milliliters", "millilitre", "millilitres"),
    "liter": ("l", "liter", "liters", "litre", "litres"),
    "second": ("s", "sec", "secs", "second", "seconds"),
    "minute": ("min", "mins", "minute", "minutes"),
    "hour": ("h", "hr", "hrs", "hour", "hours"),
    "day": ("day", "days"),
    "week": ("week", "weeks"),
    "month": ("month", "months"),
    "year": ("year", "years"),
    "percent": ("%", "percent", "per cent"),
    "degree": ("°", "degree", "degrees"),
}
_UNITS = {spelling: name for name, spellings in _UNIT_SPELLINGS.items() for spelling in spellings}
_SYMBOLS_BEFORE = {"$": "dollar", "€": "euro", "£": "pound"}

_DIGITS = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"
_NUMERAL = re.compile(
    rf"(?P<sign>-|\u2212)?(?:(?P<symbol>[$€£])\s?)?(?P<num>{_DIGITS})(?:\s?/\s?(?P<den>\d+))?"
    r"(?![\d/])"
)
_WORD = re.compile(r"[A-Za-z]+")
_AFTER_UNIT = re.compile(r"\s?(%|°|¢|\$|per cent|[A-Za-z]+\.?)")


@dataclass(frozen=True, slots=True)
class NumberMention:
    """One number a text states: its exact value, where it is, how it is written, its unit."""

    value: Fraction
    """Exact value (``"1,000"`` -> 1000, ``"3/4"`` -> 3/4, ``"forty-two"`` -> 42)."""
    start: int
    """Offset of the first character in the text."""
    end: int
    """Offset just past the last character (unit excluded)."""
    words: bool
    """Whether it is written in words (``"twelve"``) rather than digits."""
    unit: str | None
    """Canonical unit attached to it (``"dollar"`` for ``$8`` or ``8 dollars``), if any."""


def find_numbers(text: str) -> list[NumberMention]:
    """Every number ``text`` states, in order of appearance (digits and number words)."""
    mentions = [*_digit_mentions(text), *_word_mentions(text)]
    return sorted(mentions, key=lambda m: m.start)


def parse_number(text: str) -> NumberMention | None:
    """The single number ``text`` consists of (with an optional unit), else ``None``.

    ``"$8"``, ``"8 dollars"``, ``"1,000"``, ``"forty-two"`` and ``"3/4"`` parse; ``"8 or 9"`` and
    ``"8 apples"`` do not (the second is not a known unit).
    """
    found = find_numbers(text)
    if len(found) != 1:
        return None
    mention = found[0]
    rest = (text[: mention.start] + " " + text[mention.end :]).strip().strip(".").strip()
    rest = rest.replace("$", "").replace("€", "").replace("£", "").strip()
    if not rest:
        return mention
    unit = _UNITS.get(rest.lower())
    return mention if unit is not None and unit == mention.unit else None


def unit_of(text: str) -> str | None:
    """The canonical unit ``text`` names (``"metres"`` -> ``"meter"``), or ``None``."""
    return _UNITS.get(text.strip().lower())


def format_value(value: Fraction) -> str:
    """A canonical string for a value: ``"15"``, ``"-2.5"``, ``"1/3"`` (for votes)."""
    if value.denominator == 1:
        return str(value.numerator)
    decimal = _terminating_decimal(value)
    return decimal if decimal is not None else f"{value.numerator}/{value.denominator}"


def number_to_words(n: int) -> str:
    """English words for an integer below a billion: ``42`` -> ``"forty-two"``.

    Hundreds are written without "and" (``"one hundred five"``); :func:`find_numbers` reads both.
    """
    if n < 0:
        return "minus " + number_to_words(-n)
    if n >= 1_000_000_000:
        raise ValueError(f"n must be below 1,000,000,000 to be written in words, got {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens - 2] + (f"-{_ONES[ones]}" if ones else "")
    for scale_word, scale in (("million", 1_000_000), ("thousand", 1_000), ("hundred", 100)):
        if n >= scale:
            high, low = divmod(n, scale)
            head = f"{number_to_words(high)} {scale_word}"
            return head if low == 0 else f"{head} {number_to_words(low)}"
    raise AssertionError("unreachable")  # pragma: no cover - every n >= 100 has a scale


def _terminating_decimal(value: Fraction) -> str | None:
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator != 1:
        return None
    text = f"{float(value):.12f}".rstrip("0").rstrip(".")
    return text if Fraction(text) == value else None


def _digit_mentions(text: str) -> list[NumberMention]:
    out = []
    for match in _NUMERAL.finditer(text):
        start = match.start()
        negative = match.group("sign") is not None
        if negative and start > 0 and text[start - 1].isalnum():
            # "3-4" is a range or a difference: the 4 is positive.
            negative, start = False, start + 1
        elif start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
            continue  # "abc123" or "x2" is an identifier, not a number
        value = Fraction(match.group("num").replace(",", ""))
        if match.group("den"):
            if int(match.group("den")) == 0:
                continue
            value /= int(match.group("den"))
        if negative:
            value = -value
        symbol = match.group("symbol")
        unit = _SYMBOLS_BEFORE[symbol] if symbol else None
        if unit is None and start > 0 and text[start - 1] in _SYMBOLS_BEFORE:
            unit = _SYMBOLS_BEFORE[text[start - 1]]
        end = match.end()
        unit = unit or _unit_after(text, end)
        out.append(NumberMention(value=value, start=start, end=end, words=False, unit=unit))
    return out


def _unit_after(text: str, end: int) -> str | None:
    match = _AFTER_UNIT.match(text, end)
    if match is None:
        return None
    spelling = match.group(1).lower().rstrip(".")
    # A one-letter unit must stand alone ("5 m", "5m."), not start a word ("5 mice").
    return _UNITS.get(spelling)


def _word_mentions(text: str) -> list[NumberMention]:
    tokens = [(m.group(0).lower(), m.start(), m.end()) for m in _WORD.finditer(text)]
    out: list[NumberMention] = []
    i = 0
    while i < len(tokens):
        if tokens[i][0] not in _UNIT_WORDS and tokens[i][0] not in _TENS_WORDS:
            i += 1
            continue
        j, value = _read_words(tokens, i, text)
        if value is None or (j == i + 1 and tokens[i][0] == "one" and _pronoun_one(tokens, i)):
            i = j
            continue
        start, end = tokens[i][1], tokens[j - 1][2]
        unit = _unit_after(text, end)
        out.append(
            NumberMention(value=Fraction(value), start=start, end=end, words=True, unit=unit)
        )
        i = j
    return out


def _read_words(tokens: list[tuple[str, int, int]], i: int, text: str) -> tuple[int, int | None]:
    """Read one number phrase starting at token ``i``; returns (next token, value)."""
    total = current = 0
    last: str | None = None  # "unit", "teen", "tens", "hundred", "scale"
    j = i
    while j < len(tokens):
        word, start, _ = tokens[j]
        if j > i:
            gap = text[tokens[j - 1][2] : start]
            if word == "and" and last in ("hundred", "scale"):
                j += 1
                continue
            if gap.strip(" -") or "\n" in gap:
                break
        kind = _kind(word)
        if kind is None or not _may_follow(last, kind, current):
            break
        if kind == "tens":
            current += _TENS_WORDS[word]
        elif kind in ("unit", "teen"):
            current += _UNIT_WORDS[word]
        elif kind == "hundred":
            current = max(current, 1) * 100
        else:
            total += max(current, 1) * _SCALES[word]
            current = 0
        last = kind
        j += 1
    if j == i:
        return i + 1, None
    # A dangling "and" read after "hundred" belongs to the sentence, not to the number.
    while j > i + 1 and tokens[j - 1][0] == "and":
        j -= 1
    return j, total + current


def _kind(word: str) -> str | None:
    if word in _TENS_WORDS:
        return "tens"
    if word in _UNIT_WORDS:
        return "teen" if _UNIT_WORDS[word] >= 10 or word == "zero" else "unit"
    if word == "hundred":
        return "hundred"
    if word in ("thousand", "million"):
        return "scale"
    return None


def _may_follow(last: str | None, kind: str, current: int) -> bool:
    """Whether ``kind`` can continue a number phrase whose previous word was ``last``."""
    if last is None:
        return kind in ("unit", "teen", "tens")
    if kind == "unit":
        return last in ("tens", "hundred", "scale")
    if kind in ("teen", "tens"):
        return last in ("hundred", "scale")
    if kind == "hundred":
        return last in ("unit", "teen", "tens") and current < 100
    return last in ("unit", "teen", "tens", "hundred")


def _pronoun_one(tokens: list[tuple[str, int, int]], i: int) -> bool:
    before = tokens[i - 1][0] if i > 0 else ""
    after = tokens[i + 1][0] if i + 1 < len(tokens) else ""
    return before in _PRONOUN_ONE_BEFORE or after in _PRONOUN_ONE_AFTER
