"""Admission: turning a ``submit`` call into a validated job, or a typed error that changes nothing.

Everything about a request is checked here, before it is counted or queued: its fields and
options, its deadline, its tenant (the ledger's ``check_tenant``) and, for a tenant with a cost
quota, that its cost can be bounded. A :class:`Job` carries the request through the scheduler to
its single outcome.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import anyio

from howhard.config import MAX_TIMEOUT_S, QuotaConfig, SchedulerConfig
from howhard.errors import (
    HowhardError,
    InvalidRequest,
    PluginError,
    RequestTimeout,
    SchedulerClosed,
    UnknownTenant,
)
from howhard.ledger import Ledger
from howhard.procedures.containment import contain, describe
from howhard.scheduler.cost import CostModel
from howhard.types import GenerationParams, Request, Result

__all__ = ["Admission", "Admitted", "Job", "Submission"]


class Submission(NamedTuple):
    """The arguments of one ``submit`` call, as given (validated by :meth:`Admission.admit`)."""

    prompt_or_request: str | Request
    tenant: str | None = None
    reference: str | None = None
    params: GenerationParams | None = None
    metadata: Mapping[str, Any] | None = None
    timeout_s: float | None = None


class Job:
    """One submitted request and its single-assignment outcome."""

    __slots__ = (
        "began",
        "budget",
        "cancelled",
        "deadline",
        "dispatched",
        "done",
        "error",
        "expired",
        "params",
        "quota",
        "request",
        "resolved",
        "result",
        "scope",
        "started",
        "timeout_s",
    )

    def __init__(
        self,
        request: Request,
        params: GenerationParams,
        timeout_s: float | None,
        done: anyio.Event,
        quota: QuotaConfig | None,
        deadline: float = math.inf,
    ) -> None:
        self.request = request
        self.params = params
        self.quota = quota
        """The tenant's quota as the ledger reported it at submit (degrade mode needs it)."""
        self.started = time.monotonic()
        self.began = 0.0
        """When a worker took it (``time.monotonic``); 0 until then."""
        self.timeout_s = timeout_s
        self.deadline = deadline
        """When its time is up, on anyio's clock (what cancel scopes compare against)."""
        self.done = done
        self.budget = 0
        self.result: Result | None = None
        self.error: BaseException | None = None
        self.resolved = False
        self.cancelled = False
        self.expired = False
        """Its deadline passed while it ran (its caller cancelled its work for that)."""
        self.dispatched = False
        self.scope: anyio.CancelScope | None = None

    def timeout_error(self) -> RequestTimeout:
        """The error of a request whose deadline passed."""
        return RequestTimeout(
            f"request {self.request.id} did not finish within timeout_s={self.timeout_s} "
            "(queueing and retries included); raise request_timeout_s or reduce load"
        )

    def closed_error(self, state: str) -> SchedulerClosed:
        """The error of a request the scheduler closed (``state``) before it finished."""
        return SchedulerClosed(
            f"request {self.request.id} did not run: the scheduler was closed ({state}) "
            "before it finished"
        )


def submitted_at(job: Job) -> float:
    """When ``job`` was submitted (``time.monotonic``): the batcher's arrival time."""
    return job.started


class Admission:
    """Validates ``submit`` calls into :class:`Job` objects."""

    def __init__(self, config: SchedulerConfig, ledger: Ledger, cost: CostModel) -> None:
        self._config = config
        self._ledger = ledger
        self._cost = cost
        self._bounds = config.bounds

    def _ledger_error(self, exc: BaseException) -> PluginError:
        return PluginError(f"{type(self._ledger).__name__}.check_tenant raised {describe(exc)}")

    def check(self, submission: Submission) -> Admitted:
        """Validate one ``submit`` call (no I/O): ``InvalidRequest`` before anything is counted."""
        request = _request(submission)
        if len(request.prompt) > self._config.max_prompt_chars:
            raise InvalidRequest(
                f"prompt has {len(request.prompt)} characters, more than max_prompt_chars="
                f"{self._config.max_prompt_chars}; shorten it or raise SchedulerConfig."
                "max_prompt_chars"
            )
        timeout_s = submission.timeout_s
        timeout = timeout_s if timeout_s is not None else self._config.request_timeout_s
        if timeout is not None and not 0 < timeout <= MAX_TIMEOUT_S:
            raise InvalidRequest(
                f"timeout_s must be a finite number of seconds in (0, {MAX_TIMEOUT_S:g}], got "
                f"{timeout!r:.40}"
            )
        return Admitted(request, None if timeout is None else float(timeout))

    async def admit(self, admitted: Admitted, done: anyio.Event, deadline: float) -> Job:
        """The job of a checked call, once the ledger knows its tenant (``UnknownTenant``)."""
        request, timeout = admitted
        ledger = self._ledger
        with contain(self._ledger_error, passes=_LEDGER_PASSES):  # unknown tenants fail here
            quota = await ledger.check_tenant(request.tenant)
        if quota is not None and not isinstance(quota, QuotaConfig):
            raise PluginError(
                f"{type(ledger).__name__}.check_tenant returned {type(quota).__name__}; "
                "a ledger store returns a QuotaConfig or None"
            )
        if timeout is None and quota is not None and quota.cost is not None:
            self._cost.refuse_unbounded_time(request.tenant, self._bounds)
        return Job(request, request.params or self._config.params, timeout, done, quota, deadline)


class Admitted(NamedTuple):
    """A ``submit`` call that passed :meth:`Admission.check`: its request and its timeout."""

    request: Request
    timeout_s: float | None


_LEDGER_PASSES: tuple[type[BaseException], ...] = (HowhardError, UnknownTenant)


def _request(submission: Submission) -> Request:
    prompt_or_request, tenant, metadata = (
        submission.prompt_or_request,
        submission.tenant,
        submission.metadata,
    )
    timeout_s = submission.timeout_s
    if metadata is not None and not isinstance(metadata, Mapping):
        raise InvalidRequest(f"metadata must be a mapping, got {type(metadata).__name__}")
    if timeout_s is not None and (
        isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float)
    ):
        raise InvalidRequest(f"timeout_s must be a number of seconds or None, got {timeout_s!r}")
    if isinstance(prompt_or_request, Request):
        overrides: dict[str, Any] = {
            key: value
            for key, value in {
                "tenant": tenant,
                "reference": submission.reference,
                "params": submission.params,
                "metadata": metadata,
            }.items()
            if value is not None
        }
        request = (
            dataclasses.replace(prompt_or_request, **overrides) if overrides else prompt_or_request
        )
    elif isinstance(prompt_or_request, str):
        request = Request(
            prompt=prompt_or_request,
            tenant=tenant if tenant is not None else "default",
            reference=submission.reference,
            params=submission.params,
            metadata=metadata or {},
        )
    else:
        raise InvalidRequest(
            f"submit() takes a prompt string or a Request, got {type(prompt_or_request).__name__}"
        )
    if request.params is not None and not isinstance(request.params, GenerationParams):
        raise InvalidRequest(
            f"params must be a GenerationParams, got {type(request.params).__name__}"
        )
    return request
