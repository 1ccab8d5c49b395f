"""Small stand-ins shared by the training tests."""

from collections.abc import Sequence

from howhard.types import Completion, Request


class ContainsReference:
    """Test scorer: reward 1.0 when the completion contains the request's reference, else 0.0."""

    async def score(self, request: Request, completions: Sequence[Completion]) -> list[float]:
        ref = request.reference
        return [float(ref is not None and ref in c.text) for c in completions]


def contains_reference() -> ContainsReference:
    """Factory for ``--scorer tests.training.helpers:contains_reference`` in CLI tests."""
    return ContainsReference()
