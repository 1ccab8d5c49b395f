"""The Procedure protocol: how a request is answered with a given compute budget.

A procedure declares which backend calls a budget may make (``plan``; the ledger reserves their
worst case before anything runs) and then runs them through a ``Context`` (``run``), which adds
retries, deadlines and usage accounting around each backend call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from howhard.backends.base import Backend
from howhard.errors import HowhardError, ScoringError
from howhard.scoring.base import AnswerExtractor
from howhard.types import Candidate, Generation, GenerationParams, Request

__all__ = ["ABSTAINED", "Context", "Outcome", "PlannedCall", "Procedure"]

ABSTAINED: Mapping[str, Any] = MappingProxyType(
    {"abstain_reason": "budget 0: the policy gave this request no samples (min_budget=0)"}
)
"""``Outcome.metadata`` of a procedure that abstained at budget 0 (it says why, in the Result)."""


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """One backend call a procedure may make: ``n`` samples on ``backend`` (None = default)."""

    backend: Backend | None
    n: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What a procedure produced; the scheduler adds usage, budget and latency to make a Result."""

    answer: str | None
    chosen: Candidate | None
    candidates: tuple[Candidate, ...] = ()
    abstained: bool = False
    metadata: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    units: int | None = None
    """Compute units (samples) the procedure used, when it stopped before spending its whole
    budget (``None``: all of it). The scheduler settles these and returns the rest to the
    stream's carry, so later requests can spend them."""


@runtime_checkable
class Context(Protocol):
    """The procedure's handle on the backend, with retries, deadline and usage accounting."""

    @property
    def backend(self) -> Backend:
        """The scheduler's backend (used when a call names no backend)."""
        ...

    @property
    def params(self) -> GenerationParams:
        """The request's effective sampling parameters."""
        ...

    async def generate(self, prompt: str, *, n: int, backend: Backend | None = None) -> Generation:
        """Call ``backend`` (default: the scheduler's) for ``n`` samples, retrying if needed."""
        ...


@runtime_checkable
class Procedure(Protocol):
    """Answers one request with ``budget`` compute units."""

    def plan(self, budget: int) -> Sequence[PlannedCall]:
        """The calls ``run`` may make with this budget (their worst case is reserved first).

        Must depend on ``budget`` alone (the scheduler caches plans per budget).
        """
        ...

    async def run(self, request: Request, budget: int, context: Context) -> Outcome:
        """Make (at most) the planned calls through ``context`` and pick the answer."""
        ...


def extract_checked(extractor: AnswerExtractor, text: str) -> str | None:
    """``extractor(text)``, with a plug-in's own failure or non-string answer as ``ScoringError``.

    Procedures call this so a buggy extractor fails its request with a typed error naming it.
    """
    name = getattr(extractor, "__name__", type(extractor).__name__)
    try:
        answer = extractor(text)
    except HowhardError:
        raise
    except Exception as exc:
        raise ScoringError(
            f"answer extractor {name} raised {type(exc).__name__}: {exc}; "
            "return None when a text has no answer"
        ) from exc
    if answer is not None and not isinstance(answer, str):
        raise ScoringError(
            f"answer extractor {name} returned {answer!r} ({type(answer).__name__}); "
            "return a str or None"
        )
    return answer
