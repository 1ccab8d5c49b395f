"""Immutable value types passed between the scheduler, policies, procedures and backends.

Everything here is a frozen, slotted dataclass: plugins receive data they cannot mutate, and
values can be shared across tasks without copying.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from howhard.errors import ConfigError, InvalidRequest

__all__ = [
    "BudgetBounds",
    "Candidate",
    "Completion",
    "Feedback",
    "Generation",
    "GenerationParams",
    "Request",
    "Result",
    "RoundGrant",
    "RoundView",
    "Usage",
]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationParams:
    """Sampling parameters for one backend call (shared by all ``n`` samples of that call)."""

    max_tokens: int = 64
    """Upper bound on generated tokens per sample; bounds the ledger's worst-case reservation."""
    temperature: float = 0.7
    """Sampling temperature; 0 means greedy (then ``n > 1`` yields identical samples)."""
    top_p: float = 1.0
    """Nucleus sampling mass in (0, 1]."""
    stop: tuple[str, ...] = ()
    """Strings that end a sample early (not included in the text)."""
    logprobs: bool = False
    """Ask the backend for per-token log-probabilities (needed by ``MeanLogprob``)."""
    seed: int | None = None
    """Per-call seed where the backend supports one (reproducible tests); ``None`` = random."""

    def __post_init__(self) -> None:
        # Strict types: a bool is not a count, a string is not a list of stops, a NaN is not a
        # seed. Everything is checked here, before any request using these is counted or paid.
        max_tokens = self.max_tokens
        if _not_int(max_tokens) or not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
            raise InvalidRequest(
                f"max_tokens must be an integer in [1, {MAX_TOKENS_LIMIT}], got {max_tokens!r}"
            )
        temperature = self.temperature
        if _not_real(temperature) or not (math.isfinite(temperature) and temperature >= 0):
            raise InvalidRequest(f"temperature must be a finite float >= 0, got {temperature!r}")
        if _not_real(self.top_p) or not (0 < self.top_p <= 1):
            raise InvalidRequest(f"top_p must be a float in (0, 1], got {self.top_p!r}")
        stop = self.stop
        if isinstance(stop, str):
            stop = (stop,)  # one stop string, not one per character
        if isinstance(stop, bytes) or not isinstance(stop, tuple | list):
            raise InvalidRequest(f"stop must be a string or a list of strings, got {stop!r}")
        if not all(isinstance(item, str) and item for item in stop):
            raise InvalidRequest(f"stop must hold non-empty strings, got {stop!r}")
        if type(stop) is not tuple or stop is not self.stop:
            object.__setattr__(self, "stop", tuple(stop))
        if not isinstance(self.logprobs, bool):
            raise InvalidRequest(f"logprobs must be True or False, got {self.logprobs!r}")
        if self.seed is not None and (_not_int(self.seed) or abs(self.seed) >= 2**63):
            raise InvalidRequest(
                f"seed must be an integer (|seed| < 2**63) or None, got {self.seed!r}"
            )


MAX_TOKENS_LIMIT = 1_000_000
"""The most tokens per sample ``GenerationParams.max_tokens`` may ask for."""


def _not_int(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


def _not_real(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int | float)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundView:
    """A sequential request's progress, as a round gate sees it before granting its next round."""

    used: int
    """Samples drawn so far."""
    rounds: int
    """Rounds run so far."""
    passes: int
    """Samples that passed the verifier (best-of-k)."""
    fails: int
    """Samples that did not."""
    sizes: tuple[int, ...]
    """The sizes of its remaining rounds, the next one first."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundGrant:
    """A round gate's answer: ``units`` for the next round, or 0 and why the request stops."""

    units: int
    reason: str | None = None
    """With ``units == 0``: ``"not_worth"`` or ``"no_units"``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetBounds:
    """The budget rules a scheduler runs under, handed to its policy with every batch.

    One copy, from ``SchedulerConfig``: every request gets between ``min_budget`` and
    ``max_budget`` units, and ``average_budget`` per request on average over time.
    """

    average_budget: float
    """Long-run average units per request."""
    max_budget: int
    """Most units any one request may get."""
    min_budget: int = 0
    """Fewest units any request gets; 0 allows abstention."""

    def __post_init__(self) -> None:
        for name in ("max_budget", "min_budget"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be an int >= 0, got {value!r}")
        average = self.average_budget
        if isinstance(average, bool) or not isinstance(average, int | float):
            raise ConfigError(f"average_budget must be a number, got {average!r}")
        if not self.min_budget <= average <= self.max_budget:
            raise ConfigError(
                f"budgets must satisfy min_budget <= average_budget <= max_budget, got "
                f"{self.min_budget} <= {average} <= {self.max_budget}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Resources spent: tokens, compute units (samples or weak/strong calls) and money."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    units: int = 0
    """Compute units in the allocator's currency (samples for best-of-k, cost for routing)."""
    cost: float = 0.0
    """Money, in the price table's currency (dollars by default)."""

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            units=self.units + other.units,
            cost=self.cost + other.cost,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Completion:
    """One sampled continuation."""

    text: str
    tokens: int
    """Number of generated tokens."""
    logprobs: tuple[float, ...] | None = None
    """Per-token log-probabilities of the generated tokens, when requested and supported."""
    finish_reason: str | None = None
    """``"stop"``, ``"length"`` … as reported by the backend."""

    @property
    def mean_logprob(self) -> float | None:
        """Average token log-probability, or ``None`` without logprobs."""
        if not self.logprobs:
            return None
        return sum(self.logprobs) / len(self.logprobs)


@dataclass(frozen=True, slots=True, kw_only=True)
class Generation:
    """What a backend returns for one ``generate(prompt, n=…)`` call."""

    completions: tuple[Completion, ...]
    prompt_tokens: int
    """Prompt tokens processed once (the prefix is shared across the ``n`` samples)."""
    model: str = ""
    latency_s: float = 0.0

    @property
    def completion_tokens(self) -> int:
        """Generated tokens summed over all completions."""
        return sum(c.tokens for c in self.completions)


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One query submitted to the scheduler.

    ``reference`` carries the expected answer (or tests) for verifiers; it is never shown to
    the model. ``metadata`` is free-form and read-only.
    """

    prompt: str
    id: str = field(default_factory=_new_id)
    tenant: str = "default"
    reference: str | None = None
    params: GenerationParams | None = None
    """Per-request sampling overrides; ``None`` uses the scheduler's defaults."""
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise InvalidRequest(f"prompt must be a non-empty string, got {self.prompt!r:.200}")
        _check_text("prompt", self.prompt)
        if not isinstance(self.tenant, str) or not self.tenant:
            raise InvalidRequest(f"tenant must be a non-empty string, got {self.tenant!r:.200}")
        _check_text("tenant", self.tenant)
        if self.reference is not None:
            if not isinstance(self.reference, str):
                raise InvalidRequest(
                    f"reference must be a string or None, got {self.reference!r:.200} "
                    f"({type(self.reference).__name__}); pass the expected answer as text"
                )
            _check_text("reference", self.reference)
        if not isinstance(self.id, str) or not self.id:
            raise InvalidRequest(f"id must be a non-empty string, got {self.id!r:.200}")
        if self.params is not None and not isinstance(self.params, GenerationParams):
            raise InvalidRequest(
                f"params must be a GenerationParams, got {type(self.params).__name__}"
            )
        if not isinstance(self.metadata, Mapping):
            raise InvalidRequest(f"metadata must be a mapping, got {type(self.metadata).__name__}")
        if not isinstance(self.metadata, MappingProxyType):
            object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))


def _check_text(name: str, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(
            f"{name} is not valid Unicode text ({exc.reason} at index {exc.start}: "
            f"{text[exc.start : exc.end]!r}); remove lone surrogates or decode bytes properly"
        ) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """A completion with the score the procedure gave it and the answer extracted from it."""

    completion: Completion
    score: float
    answer: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """The resolved outcome of one submitted request."""

    request_id: str
    answer: str | None
    """The final answer text (the chosen candidate's extracted answer, or its text)."""
    chosen: Candidate | None
    """The candidate the procedure selected; ``None`` when the request abstained (budget 0)."""
    candidates: tuple[Candidate, ...]
    budget: int
    """Compute units the policy gave this request."""
    usage: Usage
    latency_s: float
    """Seconds from submit to resolution."""
    tenant: str = "default"
    abstained: bool = False
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True, kw_only=True)
class Feedback:
    """What serving one request revealed, handed to a policy that learns (``policy.observe``).

    The scheduler builds it after the request's procedure resolved; ``successes`` is ``None``
    when the procedure reported no verdict (self-consistency, a reward model): nothing to learn.
    """

    request: Request
    budget: int
    """Units the request was granted."""
    samples: int
    """Samples actually drawn."""
    successes: int | None = None
    """Samples the verifier passed, or ``None`` without a verdict."""
