"""Scorers and answer extraction."""

import math

import pytest

from howhard.errors import ScoringError
from howhard.scoring import (
    CallableScorer,
    ExactMatch,
    MathAnswerVerifier,
    MeanLogprob,
    Scorer,
    extract_final_answer,
    normalize_answer,
)
from howhard.types import Completion, Request

pytestmark = pytest.mark.anyio


def completions(*texts: str) -> list[Completion]:
    return [Completion(text=t, tokens=len(t.split())) for t in texts]


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("so \\boxed{\\frac{1}{2}} and 7", "\\frac{1}{2}"),
        ("\\boxed{3} then \\boxed{4}", "4"),
        ("The answer is 42. Let me check 5", "42"),
        ("Final answer: $x = 3$.", "x = 3"),
        ("I think 12 + 5 = 17", "17"),
        ("a total of 1,234 apples", "1234"),
        ("-3.5 degrees", "-3.5"),
        ("no digits here", None),
        ("cut off \\boxed{12", "12"),
    ],
)
def test_extract_final_answer(text: str, answer: str | None) -> None:
    assert extract_final_answer(text) == answer


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        (" $X = 12.50$. ", "12.5"),
        ("3.0", "3"),
        ("1,000", "1000"),
        ("Paris", "paris"),
        ("inf", "inf"),
    ],
)
def test_normalize_answer(raw: str, normal: str) -> None:
    assert normalize_answer(raw) == normal


async def test_math_verifier_accepts_equivalent_forms() -> None:
    verifier = MathAnswerVerifier()
    assert isinstance(verifier, Scorer)
    scores = await verifier.score(
        Request(prompt="q", reference="\\frac{25}{2}"),
        completions("The answer is 12.5.", "\\boxed{\\frac{25}{2}}", "it is 12", "nothing"),
    )
    assert scores == [1.0, 1.0, 0.0, 0.0]
    assert await verifier.score(Request(prompt="q", reference="2"), completions("x=2")) == [1.0]


async def test_scorers_needing_a_reference_say_so() -> None:
    for scorer in (MathAnswerVerifier(), ExactMatch()):
        with pytest.raises(ScoringError, match=r"reference=\.\.\."):
            await scorer.score(Request(prompt="q"), completions("1"))


async def test_exact_match_compares_normalised_answers() -> None:
    request = Request(prompt="q", reference="1000")
    scores = await ExactMatch().score(request, completions("answer: 1,000", "answer: 100"))
    assert scores == [1.0, 0.0]


async def test_mean_logprob_needs_logprobs() -> None:
    scored = [
        Completion(text="a b", tokens=2, logprobs=(-1.0, -3.0)),
        Completion(text="", tokens=0, logprobs=()),
    ]
    assert await MeanLogprob().score(Request(prompt="q"), scored) == [-2.0, -math.inf]
    with pytest.raises(ScoringError, match="logprobs=True"):
        await MeanLogprob().score(Request(prompt="q"), completions("a"))


async def test_callable_scorer_accepts_sync_and_async_functions() -> None:
    async def length(request: Request, completion: Completion) -> float:
        return float(completion.tokens)

    assert await CallableScorer(length).score(Request(prompt="q"), completions("a b")) == [2.0]
    sync = CallableScorer(lambda request, completion: 0.5)
    assert await sync.score(Request(prompt="q"), completions("a", "b")) == [0.5, 0.5]


def test_normalize_answer_is_exact_for_numbers_a_float_cannot_hold() -> None:
    # Degenerate generations repeat digits; float() made these overflow (OverflowError)
    # or collapse distinct integers above 2**53 into one "equal" answer.
    assert normalize_answer("1" * 400) == "1" * 400
    assert normalize_answer("12345678901234567890") != normalize_answer("12345678901234567891")
    assert normalize_answer("0.10000000000000000001") != normalize_answer("0.1")
    assert [normalize_answer(x) for x in ("-0.0", ".5", "007", "3.", "-1,000.50")] == [
        "0",
        "0.5",
        "7",
        "3",
        "-1000.5",
    ]
