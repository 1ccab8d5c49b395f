"""Typed, validated, keyword-only configuration objects for the scheduler, batching and quotas.

Every field is bounded by default and documented where it is declared. Invalid values raise
``ConfigError`` (a ``ValueError``) naming the field, the value and the fix.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from howhard.errors import ConfigError
from howhard.types import BudgetBounds, GenerationParams

__all__ = [
    "BatchingConfig",
    "Price",
    "QuotaConfig",
    "RetryConfig",
    "SchedulerConfig",
]


DEFAULT_REQUEST_TIMEOUT_S = 600.0
"""The deadline of a request that sets none: every request's time is bounded by default."""

MAX_TIMEOUT_S = 7 * 24 * 3600.0
"""The longest deadline a request or a config may set (a week): finite, so deadlines add up."""


class _Config(BaseModel):
    """Base: frozen, keyword-only, no unknown fields; pydantic errors become ``ConfigError``."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{type(self).__name__}.{'.'.join(map(str, e['loc']))}: "
                f"{e['msg']} (got {e.get('input')!r})"
                if e["loc"]
                else f"{type(self).__name__}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            )
            raise ConfigError(problems) from None


class BatchingConfig(_Config):
    """When the batcher closes a micro-batch: at ``max_batch_size`` or ``max_wait_s``."""

    max_batch_size: int = Field(
        default=64, ge=1, le=65_536, description="Most requests in one batch."
    )
    max_wait_s: float = Field(
        default=0.005,
        ge=0.0,
        le=60.0,
        description="Seconds a batch stays open after its first request (monotonic clock; "
        "it aims 0.5 ms early to absorb the event loop's 1 ms timer rounding).",
    )


class RetryConfig(_Config):
    """Retries of retryable backend errors: exponential backoff with full jitter."""

    max_attempts: int = Field(
        default=4, ge=1, le=100, description="Backend calls per request, the first included."
    )
    initial_backoff_s: float = Field(
        default=0.05, ge=0.0, le=60.0, description="Upper bound of the first backoff before jitter."
    )
    max_backoff_s: float = Field(
        default=5.0, ge=0.0, le=600.0, description="Cap on any single backoff."
    )
    jitter: bool = Field(
        default=True,
        description="Draw each backoff uniformly from [0, bound] (full jitter) if true.",
    )


class Price(_Config):
    """What one backend/model costs, in the ledger's currency (dollars by default)."""

    input_per_mtok: float = Field(
        default=0.0, ge=0.0, allow_inf_nan=False, description="Price per million prompt tokens."
    )
    output_per_mtok: float = Field(
        default=0.0, ge=0.0, allow_inf_nan=False, description="Price per million generated tokens."
    )
    per_second: float = Field(
        default=0.0,
        ge=0.0,
        allow_inf_nan=False,
        description="Price per second of backend time (self-hosted engines); reserved up front "
        "as the request's timeout, so a tenant with a cost quota must submit with a timeout.",
    )

    def cost(self, prompt_tokens: int, completion_tokens: int, seconds: float = 0.0) -> float:
        """Cost of one call with these token counts and duration."""
        return (
            prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok
        ) / 1e6 + seconds * self.per_second

    def cost_micros(self, prompt_tokens: int, completion_tokens: int, seconds: float = 0.0) -> int:
        """:meth:`cost` in integer micro-units of the currency, rounded to the nearest.

        What ledgers sum: a per-million-token price is exactly a price per token in micro-units.
        Rounding is monotone, so a call that reads and generates no more than a reservation's
        worst case never costs more micro-units than that worst case.
        """
        if not (self.input_per_mtok or self.output_per_mtok or self.per_second):
            return 0  # a free model (the default price): no float arithmetic on the hot path
        return round(
            prompt_tokens * self.input_per_mtok
            + completion_tokens * self.output_per_mtok
            + seconds * self.per_second * 1e6
        )


class QuotaConfig(_Config):
    """One tenant's limits over a sliding window; ``None`` means unlimited."""

    units: int | None = Field(
        default=None, ge=0, description="Compute units (samples / strong calls)."
    )
    tokens: int | None = Field(default=None, ge=0, description="Prompt plus completion tokens.")
    cost: float | None = Field(
        default=None, ge=0.0, description="Money, in the price table's currency."
    )
    window_s: float | None = Field(
        default=None, gt=0.0, description="Sliding window in seconds; None counts spend forever."
    )
    on_exceed: Literal["reject", "degrade"] = Field(
        default="reject",
        description="'reject' raises QuotaExceeded; 'degrade' grants the largest budget that fits.",
    )


class SchedulerConfig(_Config):
    """Everything the scheduler needs besides its plug-ins (backend, policy, procedure, ledger)."""

    average_budget: float = Field(
        gt=0.0, le=4096.0, description="Long-run average compute units per request."
    )
    max_budget: int = Field(
        default=16, ge=1, le=4096, description="Most units any one request may get."
    )
    min_budget: int = Field(
        default=0, ge=0, le=4096, description="Fewest units any request gets; 0 allows abstention."
    )
    batching: BatchingConfig = Field(
        default_factory=BatchingConfig, description="When micro-batches close."
    )
    max_queue: int = Field(
        default=1024,
        ge=1,
        le=1_000_000,
        description="Bound of the submission queue (backpressure).",
    )
    max_concurrency: int = Field(
        default=64, ge=1, le=100_000, description="Requests running on the backend at once."
    )
    params: GenerationParams = Field(
        default_factory=GenerationParams, description="Default sampling parameters."
    )
    retry: RetryConfig = Field(default_factory=RetryConfig, description="Backend retry policy.")
    request_timeout_s: float | None = Field(
        default=DEFAULT_REQUEST_TIMEOUT_S,
        gt=0.0,
        le=MAX_TIMEOUT_S,
        allow_inf_nan=False,
        description="Deadline from submit to result (queueing, retries and scoring included) "
        "for requests that set none; None (only through config=) waits forever.",
    )
    policy_timeout_s: float = Field(
        default=60.0,
        gt=0.0,
        le=MAX_TIMEOUT_S,
        allow_inf_nan=False,
        description="Seconds a policy (and its predictor) may take over one batch; past it the "
        "batch fails with PolicyError and later batches go on.",
    )
    max_prompt_chars: int = Field(
        default=1_000_000,
        ge=1,
        le=100_000_000,
        description="Longest prompt submit() accepts, in characters (InvalidRequest above).",
    )
    carry_limit: float | None = Field(
        default=None,
        ge=0.0,
        allow_inf_nan=False,
        description="Most unspent units carried to later batches; None = one full batch's worth.",
    )
    prices: dict[str, Price] = Field(
        default_factory=dict,
        description="Price of each model by name (models not listed are free); the cost model "
        "prices every reservation and result with it.",
    )
    prompt_overhead_tokens: int = Field(
        default=64,
        ge=0,
        le=100_000,
        description="Tokens a chat template may add to a prompt (bounds the quota reservation).",
    )

    @model_validator(mode="after")
    def _budgets_are_consistent(self) -> SchedulerConfig:
        if self.min_budget > self.max_budget:
            raise ValueError(
                f"min_budget ({self.min_budget}) must be <= max_budget ({self.max_budget})"
            )
        if not self.min_budget <= self.average_budget <= self.max_budget:
            raise ValueError(
                f"average_budget must lie in [min_budget, max_budget] = "
                f"[{self.min_budget}, {self.max_budget}], got {self.average_budget}"
            )
        return self

    @classmethod
    def merged(cls, config: SchedulerConfig | None = None, **overrides: Any) -> SchedulerConfig:
        """``config`` (or the defaults) with every override that is not ``None`` applied."""
        base: dict[str, Any] = dict(config) if config is not None else {}
        return cls(**{**base, **{k: v for k, v in overrides.items() if v is not None}})

    @property
    def bounds(self) -> BudgetBounds:
        """The budget bounds the scheduler hands its policy with every batch."""
        return BudgetBounds(
            average_budget=self.average_budget,
            max_budget=self.max_budget,
            min_budget=self.min_budget,
        )

    @property
    def effective_carry_limit(self) -> float:
        """The carry bound in force: ``carry_limit`` or ``average_budget * max_batch_size``."""
        if self.carry_limit is not None:
            return self.carry_limit
        return self.average_budget * self.batching.max_batch_size
