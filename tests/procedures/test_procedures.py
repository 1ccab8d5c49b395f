"""Decoding procedures: best-of-k, self-consistency and routing, run through a RetryingCaller."""

from collections.abc import Sequence

import pytest

from howhard.backends import ScriptedBackend
from howhard.config import Price
from howhard.errors import ConfigError, ScoringError
from howhard.procedures import (
    BestOfK,
    PlannedCall,
    Procedure,
    RetryingCaller,
    Routing,
    SelfConsistency,
)
from howhard.scoring import CallableScorer, ExactMatch
from howhard.types import Completion, Generation, GenerationParams, Request

pytestmark = pytest.mark.anyio
PARAMS = GenerationParams(max_tokens=16)


def context(backend: ScriptedBackend) -> RetryingCaller:
    return RetryingCaller(backend, PARAMS)


def scripted(*texts: str) -> ScriptedBackend:
    return ScriptedBackend(lambda prompt, n, params: [texts[i % len(texts)] for i in range(n)])


async def test_best_of_k_makes_one_call_and_keeps_the_best_scored_sample() -> None:
    backend = scripted("The answer is 3.", "The answer is 4.", "The answer is 4.")
    procedure = BestOfK(ExactMatch())
    outcome = await procedure.run(Request(prompt="2+2", reference="4"), 3, context(backend))
    assert [call.n for call in backend.calls] == [3]
    assert outcome.answer == "4"
    assert outcome.chosen is outcome.candidates[1]  # the first of the tied best
    assert [c.score for c in outcome.candidates] == [0.0, 1.0, 1.0]
    assert procedure.plan(3) == [PlannedCall(None, 3)]


async def test_best_of_k_rejects_scorers_that_break_their_contract() -> None:
    backend = scripted("a")
    few = BestOfK(CallableScorer(lambda request, completion: 1.0))

    class Short:
        async def score(self, request: Request, completions: Sequence[Completion]) -> list[float]:
            return [1.0]

    with pytest.raises(ScoringError, match="returned 1 scores for 2 completions"):
        await BestOfK(Short()).run(Request(prompt="q"), 2, context(backend))
    nan = BestOfK(CallableScorer(lambda request, completion: float("nan")))
    with pytest.raises(ScoringError, match="must be finite"):
        await nan.run(Request(prompt="q"), 1, context(backend))
    assert (await few.run(Request(prompt="q"), 2, context(backend))).answer == "a"


async def test_budget_zero_abstains_without_calling_the_backend() -> None:
    backend = scripted("x")
    for procedure in (
        BestOfK(ExactMatch(), default_answer="?"),
        SelfConsistency(default_answer="?"),
    ):
        outcome = await procedure.run(Request(prompt="q"), 0, context(backend))
        assert outcome.abstained and outcome.answer == "?" and outcome.chosen is None
        assert procedure.plan(0) == []
    assert backend.calls == []


async def test_self_consistency_returns_the_majority_normalised_answer() -> None:
    backend = scripted("x = 12.50", "The answer is 7.", "so 12.5", "\\boxed{12.5}")
    outcome = await SelfConsistency().run(Request(prompt="q"), 4, context(backend))
    assert outcome.answer == "12.50"  # first sample of the winning answer, as extracted
    assert outcome.chosen is outcome.candidates[0]
    assert [c.score for c in outcome.candidates] == [0.75, 0.25, 0.75, 0.75]
    assert outcome.metadata["votes"] == {"12.5": 3, "7": 1}


async def test_self_consistency_breaks_ties_by_first_appearance() -> None:
    backend = scripted("answer: 9", "answer: 5", "answer: 5", "answer: 9")
    outcome = await SelfConsistency().run(Request(prompt="q"), 4, context(backend))
    assert outcome.answer == "9"


async def test_self_consistency_without_answers_returns_the_first_text() -> None:
    backend = scripted("no idea", "hmm")
    outcome = await SelfConsistency().run(Request(prompt="q"), 2, context(backend))
    assert outcome.answer == "no idea"
    assert all(c.score == 0.0 for c in outcome.candidates)


class NoCompletionsBackend:
    """A backend that answers every call with zero completions."""

    model = "empty"

    async def generate(self, prompt: str, *, n: int, params: GenerationParams) -> Generation:
        return Generation(completions=(), prompt_tokens=3, model=self.model)

    async def aclose(self) -> None:
        pass


async def test_a_backend_returning_no_completions_fails_with_scoring_error() -> None:
    for procedure in (BestOfK(ExactMatch()), SelfConsistency()):
        with pytest.raises(ScoringError, match="backend returned no completions for n=2"):
            caller = RetryingCaller(NoCompletionsBackend(), PARAMS)
            await procedure.run(Request(prompt="q"), 2, caller)


async def test_routing_between_backends_prices_each_model() -> None:
    weak = ScriptedBackend({"q": "The answer is 1."}, model="weak")
    strong = ScriptedBackend({"q": "The answer is 2."}, model="strong")
    prices = {"weak": Price(output_per_mtok=1.0), "strong": Price(output_per_mtok=10.0)}
    routing = Routing(weak, strong)
    assert isinstance(routing, Procedure)
    assert routing.plan(0) == [PlannedCall(weak, 1)]
    assert routing.plan(1) == [PlannedCall(strong, 1)]

    weak_ctx = RetryingCaller(ScriptedBackend(), PARAMS, price=lambda m: prices.get(m, Price()))
    low = await routing.run(Request(prompt="q"), 0, weak_ctx)
    strong_ctx = RetryingCaller(ScriptedBackend(), PARAMS, price=lambda m: prices.get(m, Price()))
    high = await routing.run(Request(prompt="q"), 1, strong_ctx)
    assert (low.answer, low.metadata["route"], low.metadata["model"]) == ("1", "weak", "weak")
    assert (high.answer, high.metadata["route"]) == ("2", "strong")
    assert strong_ctx.usage.cost == pytest.approx(10 * weak_ctx.usage.cost)
    assert len(weak.calls) == len(strong.calls) == 1


async def test_routing_between_procedures_uses_the_default_backend() -> None:
    backend = scripted("The answer is 6.", "The answer is 5.", "The answer is 5.")
    routing = Routing(SelfConsistency(), BestOfK(ExactMatch()), samples=3)
    outcome = await routing.run(Request(prompt="q", reference="5"), 1, context(backend))
    assert outcome.answer == "5" and outcome.metadata["route"] == "strong"
    assert routing.plan(0) == [PlannedCall(None, 3)]
    with pytest.raises(ConfigError, match="samples must be >= 1"):
        Routing(SelfConsistency(), SelfConsistency(), samples=0)


def _raise_value_error(*args: object) -> float:
    raise ValueError("plugin bug")


async def test_a_scorer_that_raises_or_returns_garbage_fails_with_scoring_error() -> None:
    backend = scripted("The answer is 3.")
    with pytest.raises(ScoringError, match=r"CallableScorer.score raised ValueError: plugin bug"):
        await BestOfK(CallableScorer(_raise_value_error)).run(
            Request(prompt="q"), 1, context(backend)
        )

    class Garbage:
        async def score(self, request: Request, completions: Sequence[Completion]) -> list[float]:
            return ["high"]  # type: ignore[list-item]  # the contract violation under test

    with pytest.raises(ScoringError, match=r"Garbage returned score 'high'"):
        await BestOfK(Garbage()).run(Request(prompt="q"), 1, context(backend))


@pytest.mark.parametrize("make", [BestOfK.__name__, SelfConsistency.__name__])
async def test_an_answer_extractor_that_raises_or_returns_garbage_fails_with_scoring_error(
    make: str,
) -> None:
    backend = scripted("The answer is 3.")

    def build(extractor: object) -> Procedure:
        if make == "BestOfK":
            return BestOfK(CallableScorer(lambda request, completion: 1.0), extractor=extractor)  # type: ignore[arg-type]
        return SelfConsistency(extractor)  # type: ignore[arg-type]

    with pytest.raises(ScoringError, match=r"answer extractor .* raised ValueError: plugin bug"):
        await build(_raise_value_error).run(Request(prompt="q"), 1, context(backend))
    with pytest.raises(ScoringError, match=r"answer extractor .* returned 3 \(int\)"):
        await build(lambda text: 3).run(Request(prompt="q"), 1, context(backend))
