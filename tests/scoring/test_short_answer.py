"""ShortAnswerVerifier reads any short reply against a reference, and refuses to guess."""

import pytest

from howhard.errors import ScoringError
from howhard.scoring import ShortAnswerVerifier
from howhard.types import Completion, Request

pytestmark = pytest.mark.anyio

SUM = "What is 7 + 8? Answer with just the number."
FRUIT = "Which of these is a fruit? A) chair B) apple C) car. Answer with the letter."
CAPITAL = "What is the capital of France?"
WEARY = 'Which word means the same as "weary": dirty, gather or tired?'


@pytest.fixture(scope="module")
def verifier() -> ShortAnswerVerifier:
    return ShortAnswerVerifier()


@pytest.mark.parametrize(
    ("reply", "reference", "prompt"),
    [
        ("15", "15", SUM),
        ("The sum of 7 and 8 is 15.", "15", SUM),
        ("7 + 8 = 15", "15", SUM),
        ("Fifteen.", "15", SUM),
        ("**15**", "15", SUM),
        ("There are 1,000 grams in a kilogram.", "1000", "How many grams are in a kilogram?"),
        ("$8", "$8", "What do they cost?"),
        ("It costs 8 dollars.", "$8", "What do they cost?"),
        ("8", "$8", "What do they cost?"),
        ("300 cm", "300 centimeters", "How much is 3 meters in centimeters?"),
        ("forty-two", "forty-two", "Write the number 42 in words."),
        ("Yes, 7 is greater than 3.", "yes", "Is 7 greater than 3?"),
        ("B", "B", FRUIT),
        ("The answer is B) apple.", "B", FRUIT),
        ("Apple is the fruit.", "B", FRUIT),
        ("The capital of France is Paris.", "Paris", CAPITAL),
        ("New Delhi", "New Delhi|Delhi", "What is the capital of India?"),
        ("Brasilia", "Brasília|Brasilia", "What is the capital of Brazil?"),
        ("APPLE", "APPLE", 'Write the word "apple" in capital letters.'),
        ("The letter after D is E.", "E", "Which letter comes right after D in the alphabet?"),
        ("The letter D comes first.", "D", "Which letter comes first in the alphabet: D or K?"),
        ("The opposite of hot is cold.", "cold", 'What is the opposite of "hot"?'),
        ("Large, huge", "large|huge", 'What is another word for "big"?'),
        ("2, 4, 6, 8, 10", "10", "What number comes next: 2, 4, 6, 8, ...?"),
        ("The list reversed is 6, 5, 4.", "6, 5, 4", "Write this list in reverse order: 4, 5, 6."),
        ("\\boxed{\\frac{1}{2}}", "1/2", "What is half of one?"),
        ("The answer is $x^2+1$", "x^2+1", "Expand."),
        ('The opposite of "yes" is "No."', "no", 'What is the opposite of "yes"?'),
        ("Weary means tired.", "tired", WEARY),
        ("Anna has 4 bags, which is 4 x 2 = 8 balls. Anna has 4 bags.", "8", "4 bags of 2 balls?"),
        ('The plural of "hero" is indeed "heroes".', "heroes", 'What is the plural of "hero"?'),
        (
            "Poland is a sovereign state in Central Europe.",
            "Europe",
            "On which continent is Poland?",
        ),
    ],
)
def test_accepts_the_answer_however_it_is_stated(
    verifier: ShortAnswerVerifier, reply: str, reference: str, prompt: str
) -> None:
    assert verifier.verify(reply, reference, prompt)


@pytest.mark.parametrize(
    ("reply", "reference", "prompt"),
    [
        ("16", "15", SUM),
        ("15 or 16", "15", SUM),
        ("It could be 14, 15", "15", SUM),
        ("The answer is 15. No wait, the answer is 16.", "15", SUM),
        ("8 cents", "$8", "What do they cost?"),
        ("42", "forty-two", "Write the number 42 in words."),
        ("Seven", "7", 'Write "seven" with digits.'),
        ("No, it is not.", "yes", "Is 7 greater than 3?"),
        ("Yes or no?", "yes", "Is 7 greater than 3?"),
        ("A) chair B) apple", "B", FRUIT),
        ("London", "Paris", CAPITAL),
        ("Paris or London", "Paris", CAPITAL),
        ("Apple", "APPLE", 'Write the word "apple" in capital letters.'),
        ("large, small", "large|huge", 'What is another word for "big"?'),
        ("4, 5, 6", "6, 5, 4", "Write this list in reverse order: 4, 5, 6."),
        ("6, 5, 4, 3", "6, 5, 4", "Write this list in reverse order: 4, 5, 6."),
        ("6, 5, 4 or 5, 6, 4", "6, 5, 4", "Write this list in reverse order: 4, 5, 6."),
        ("I don't know.", "15", SUM),
        ("I don't know.", "Paris", CAPITAL),
        ("Dirty, gather, tired are all related to weariness.", "tired", WEARY),
        ("Tired or dirty.", "tired", WEARY),
        ("It is deep purple with a hint of red.", "red", "What color is a ripe strawberry?"),
        ("Poland is not in Asia, it is in Europe.", "Asia", "On which continent is Poland?"),
        ('It is typically "felt" or "feeling".', "felt", 'What is the past tense of "feel"?'),
        ("Total = $6 + $5 = $11. So, together they cost $10.", "$11", "What do they cost?"),
        ("No! The answer is not divisible by 2. You have 4 legs.", "2", "How many legs?"),
        (
            'I cannot use "Answer:" as 7 + 5 - 5.',
            "7",
            'What is 7 + 5 - 5? Write "Answer:" then it.',
        ),
    ],
)
def test_refuses_wrong_and_hedged_replies(
    verifier: ShortAnswerVerifier, reply: str, reference: str, prompt: str
) -> None:
    assert not verifier.verify(reply, reference, prompt)


@pytest.mark.parametrize(
    ("reply", "prompt", "reference", "canonical"),
    [
        ("Fifteen.", SUM, None, "15"),
        ("The answer is 15.0", SUM, None, "15"),
        ("15 or 16", SUM, None, None),
        ("Paris.", CAPITAL, None, "paris"),
        ("The capital of France is Paris.", CAPITAL, "Paris", "paris"),
        ("Yes, it is.", "Is 7 greater than 3?", None, "yes"),
        ("B) apple", FRUIT, None, "B"),
        ("It is $8.", "What do they cost?", "$8", "8"),
    ],
)
def test_canonical_answers_agree_across_spellings(
    verifier: ShortAnswerVerifier,
    reply: str,
    prompt: str,
    reference: str | None,
    canonical: str | None,
) -> None:
    assert verifier.answer(reply, prompt, reference) == canonical


async def test_scores_completions_and_needs_a_reference(verifier: ShortAnswerVerifier) -> None:
    completions = [Completion(text=t, tokens=1) for t in ("15", "16", "fifteen")]
    request = Request(prompt=SUM, reference="15")
    assert await verifier.score(request, completions) == [1.0, 0.0, 1.0]
    with pytest.raises(ScoringError, match="has no reference"):
        await verifier.score(Request(prompt=SUM), completions)
    with pytest.raises(ScoringError, match="reference must name an answer"):
        verifier.verify("15", " | ", SUM)
