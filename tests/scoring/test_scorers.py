"""Scorers and answer extraction."""

import math

import pytest
import structlog

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


async def test_math_verifier_scores_a_sample_math_verify_fails_on_as_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import math_verify

    from howhard.scoring import math_verifier

    class FailsOnOdd:
        """math-verify, except that parsing the answer ``odd`` raises like sympy does."""

        def parse(self, text: str, **kwargs: object) -> object:
            if text == "odd":
                raise RecursionError("maximum recursion depth exceeded")
            return math_verify.parse(text, **kwargs)

        def verify(self, gold: object, pred: object, **kwargs: object) -> bool:
            return bool(math_verify.verify(gold, pred, **kwargs))

    monkeypatch.setattr(math_verifier, "_math_verify", FailsOnOdd)
    with structlog.testing.capture_logs() as events:
        # inline: the patched math-verify lives in this process only
        scores = await MathAnswerVerifier(isolation="inline").score(
            Request(prompt="q", reference="2", id="req-7"),
            completions("\\boxed{2}", "\\boxed{odd}", "\\boxed{3}"),
        )
    assert scores == [1.0, 0.0, 0.0]
    [event] = [e for e in events if e["event"] == "scoring.verify_failed"]
    assert event["log_level"] == "warning"
    assert event["request_id"] == "req-7"
    assert event["answer"] == "odd"
