"""Numbers as replies state them: digits, separators, fractions, words and units."""

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from howhard.scoring.numbers import find_numbers, format_value, number_to_words, parse_number


def _values(text: str) -> list[tuple[str, bool, str | None]]:
    return [(format_value(m.value), m.words, m.unit) for m in find_numbers(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7 and 8 is 15.", [("7", False, None), ("8", False, None), ("15", False, None)]),
        ("9 - 3 = 6", [("9", False, None), ("3", False, None), ("6", False, None)]),
        ("It is -3 degrees", [("-3", False, "degree")]),
        ("$8, or 8 dollars", [("8", False, "dollar"), ("8", False, "dollar")]),
        ("1,000 grams and 2.5 kg", [("1000", False, "gram"), ("2.5", False, "kilogram")]),
        ("a spider has eight legs", [("8", True, None)]),
        ("one hundred and five", [("105", True, None)]),
        ("twenty-three apples", [("23", True, None)]),
        ("The larger one is 52", [("52", False, None)]),
        ("3/4 of 12", [("0.75", False, None), ("12", False, None)]),
        ("five cents", [("5", True, "cent")]),
        ("2 km is 2000m", [("2", False, "kilometer"), ("2000", False, "meter")]),
        ("x2 and 3-4", [("3", False, None), ("4", False, None)]),
        ("5 mice", [("5", False, None)]),
    ],
)
def test_find_numbers_reads_digits_words_and_units(
    text: str, expected: list[tuple[str, bool, str | None]]
) -> None:
    assert _values(text) == expected


@pytest.mark.parametrize(
    ("text", "value", "unit"),
    [("$8", 8, "dollar"), ("8 dollars", 8, "dollar"), ("300 centimeters", 300, "centimeter"),
     ("forty-two", 42, None), ("3/4", Fraction(3, 4), None), ("1,000", 1000, None)],
)  # fmt: skip
def test_parse_number_reads_one_amount(text: str, value: Fraction, unit: str | None) -> None:
    parsed = parse_number(text)
    assert parsed is not None and parsed.value == value and parsed.unit == unit


@pytest.mark.parametrize("text", ["8 or 9", "8 apples", "Paris", ""])
def test_parse_number_refuses_anything_else(text: str) -> None:
    assert parse_number(text) is None


@given(st.integers(min_value=0, max_value=999_999_999))
def test_number_words_read_back_to_the_same_integer(n: int) -> None:
    found = find_numbers(number_to_words(n))
    assert [(m.value, m.words) for m in found] == [(n, True)]


def test_number_to_words_spells_as_a_reply_would() -> None:
    assert [number_to_words(n) for n in (7, 42, 105, 1234)] == [
        "seven",
        "forty-two",
        "one hundred five",
        "one thousand two hundred thirty-four",
    ]
    with pytest.raises(ValueError, match="below 1,000,000,000"):
        number_to_words(10**9)


def test_format_value_is_canonical() -> None:
    assert [format_value(Fraction(v)) for v in ("15", "15.0", "-2.5", "1/3")] == [
        "15",
        "15",
        "-2.5",
        "1/3",
    ]
