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


async def test_requires_the_family_in_metadata() -> None:
    request = Request(prompt="What is 7 + 8?", reference="15")
    with pytest.raises(ScoringError, match="metadata\\['family'\\]"):
        await TaskScorer().score(request, [_completion("15")])


async def test_requires_a_reference() -> None:
    request = Request(prompt="What is 7 + 8?", metadata={"family": "addition"})
    with pytest.raises(ScoringError, match="no reference"):
        await TaskScorer().score(request, [_completion("15")])
