"""Every family generates distinct, graded questions and verifies its own references."""

import random

import pytest

from howhard.tasks import FAMILIES, TaskFamily, family


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: f.name)
def test_family_generates_distinct_questions_at_every_level(fam: TaskFamily) -> None:
    questions = fam.generate(random.Random(0), 60)
    assert len(questions) >= 30
    assert len({q.prompt for q in questions}) == len(questions)
    assert {q.level for q in questions} == {1, 2, 3}
    assert all(q.family == fam.name for q in questions)


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: f.name)
def test_family_accepts_the_bare_reference_and_rejects_a_wrong_one(fam: TaskFamily) -> None:
    for q in fam.generate(random.Random(1), 20):
        reference = q.reference.split("|")[0]
        assert fam.verify(reference, q.reference, q.prompt), q
        assert fam.verify(f"The answer is {reference}.", q.reference, q.prompt), q
        assert not fam.verify("I don't know.", q.reference, q.prompt), q


@pytest.mark.parametrize("fam", FAMILIES, ids=lambda f: f.name)
def test_generation_is_deterministic_in_the_seed(fam: TaskFamily) -> None:
    assert fam.generate(random.Random(7), 10) == fam.generate(random.Random(7), 10)


def test_numeric_answers_are_canonical_for_votes() -> None:
    addition = family("addition")
    assert addition.answer("7 + 8 = 15", "What is 7 + 8?") == "15"
    assert addition.answer("The answer is 15.0", "What is 7 + 8?") == "15"


def test_word_answers_skip_the_question_and_filler() -> None:
    opposites = family("opposites")
    prompt = 'What is the opposite of "hot"? Answer with one word.'
    assert opposites.answer("The opposite of hot is cold.", prompt) == "cold"
    assert opposites.verify("The opposite of hot is cold.", "cold", prompt)
    assert not opposites.verify("The opposite of hot is warm.", "cold", prompt)


def test_calendar_ignores_the_day_it_was_asked_about() -> None:
    calendar = family("calendar")
    prompt = "What day comes after Monday? Answer with one word."
    assert calendar.verify("After Monday comes Tuesday.", "Tuesday", prompt)
    assert not calendar.verify("Monday", "Tuesday", prompt)


def test_comparison_takes_the_number_named_as_the_answer() -> None:
    comparison = family("comparison")
    prompt = "Which number is larger: 47 or 52? Answer with just the number."
    assert comparison.verify("The larger number is 52.", "52", prompt)
    assert comparison.verify("52", "52", prompt)
    assert not comparison.verify("47", "52", prompt)


def test_unknown_family_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"family must be one of .*addition"):
        family("poetry")
