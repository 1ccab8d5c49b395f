"""TaskScorer gives binary rewards from the question's own verifier."""

import pytest

from howhard.errors import ScoringError
from howhard.tasks import TaskScorer
from howhard.types import Completion, Request

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _completion(text: str) -> Completion:
    return Completion(text=text, tokens=len(text.split()))


async def test_scores_each_completion_zero_or_one() -> None:
    request = Request(
        prompt="What is 7 + 8? Answer with just the number.",
        reference="15",
        metadata={"family": "addition"},
    )
    replies = ["15", "7 + 8 = 15", "The answer is 16.", "I am not sure."]
    rewards = await TaskScorer().score(request, [_completion(r) for r in replies])
    assert rewards == [1.0, 1.0, 0.0, 0.0]


async def test_requests_outside_the_suite_fall_back_to_the_general_verifier() -> None:
    request = Request(prompt="How much is a dozen eggs in eggs?", reference="12")
    replies = ["A dozen is twelve eggs.", "12 eggs", "It is 12 or 13.", "I am not sure."]
    rewards = await TaskScorer().score(request, [_completion(r) for r in replies])
    assert rewards == [1.0, 1.0, 0.0, 0.0]


async def test_unknown_family_names_fall_back_too() -> None:
    request = Request(prompt="Say blue.", reference="blue", metadata={"family": "poetry"})
    assert await TaskScorer().score(request, [_completion("Blue.")]) == [1.0]


async def test_known_families_keep_their_own_verifier() -> None:
    # The core letter verifier does not read "Answer: o"; the general one would.
    request = Request(
        prompt='What is the second letter of the word "dog"? Answer with just the letter.',
        reference="o",
        metadata={"family": "letter"},
    )
    assert await TaskScorer().score(request, [_completion("Answer: o")]) == [0.0]
    general = Request(prompt=request.prompt, reference="o")
    assert await TaskScorer().score(general, [_completion("Answer: o")]) == [1.0]


async def test_requires_a_reference() -> None:
    request = Request(prompt="What is 7 + 8?", metadata={"family": "addition"})
    with pytest.raises(ScoringError, match="no reference"):
        await TaskScorer().score(request, [_completion("15")])
