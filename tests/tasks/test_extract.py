"""Answer extraction copes with the chatty replies a small model gives."""

import pytest

from howhard.tasks.extract import extract_letter, extract_number, first_mention, mentions


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("15", 15.0),
        ("The sum of 7 and 8 is 15.", 15.0),
        ("7 + 8 = 15", 15.0),
        ("The answer is 15. That is because 7 + 8 = 15.", 15.0),
        ("**42**", 42.0),
        ("First 20 + 30 = 50, then 50 + 7 = 57", 57.0),
        ("Tom has 3 apples and gets 2 more, so Tom has 5 apples.", 5.0),
        ("There are 1,000 grams in a kilogram.", 1000.0),
        ("The result is -3.", -3.0),
    ],
)
def test_extract_number_prefers_the_stated_answer(reply: str, expected: float) -> None:
    assert extract_number(reply) == expected


def test_extract_number_returns_none_without_digits() -> None:
    assert extract_number("I am not sure.") is None


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('The first letter of "apple" is "a".', "a"),
        ("The last letter is t.", "t"),
        ("E", "e"),
        ("It is the letter P", "p"),
    ],
)
def test_extract_letter(reply: str, expected: str) -> None:
    assert extract_letter(reply) == expected


def test_extract_letter_returns_none_when_no_single_letter_is_named() -> None:
    assert extract_letter("The word starts with an apple sound.") is None


def test_mentions_matches_whole_words_only() -> None:
    assert mentions("The opposite of hot is cold.", "cold")
    assert not mentions("It is colder today.", "cold")
    assert mentions("mexico city is the capital", "Mexico City")


def test_first_mention_picks_the_earliest_candidate() -> None:
    assert first_mention("Tuesday comes after Monday", ["Monday", "Tuesday"]) == "Tuesday"
    assert first_mention("no days here", ["Monday"]) is None
