"""The exception tree of howhard: one root, grouped by what the caller should do next.

::

    HowhardError
    ├── UsageError                  misuse: fix the call or the configuration; retrying cannot help
    │   ├── ConfigError             (also ValueError) invalid configuration value
    │   ├── InvalidRequest          (also ValueError) empty prompt, bad per-request option …
    │   ├── UnknownTenant           (also KeyError) a tenant the ledger has no quota for
    │   ├── SchedulerClosed         submit() after close()/aclose()
    │   ├── PolicyError             a policy returned invalid budgets (wrong length, negative …)
    │   └── CheckpointError         corrupt, unsafe (pickle) or mismatched checkpoint
    ├── MissingDependency           (also ImportError) an optional extra is not installed
    ├── Rejected                    policy outcomes: the system worked and said no
    │   ├── QuotaExceeded           the tenant's quota cannot cover the request
    │   └── QueueFull               submit_nowait() on a full queue
    ├── RequestTimeout              the per-request deadline passed (retries included)
    ├── LedgerUnavailable           the shared quota store cannot be reached (fail closed)
    ├── ScoringError                a scorer failed on a completion
    ├── PluginError                 a procedure, ledger store or other plug-in broke its contract
    └── BackendError                the model backend failed
        ├── BackendRejected         the backend refused the request (4xx); not retryable
        └── RetryableError          transient; retried with backoff up to the deadline
            ├── BackendTimeout      one backend call took too long
            ├── RateLimited         429; ``retry_after`` seconds when the server said so
            └── BackendUnavailable  5xx, connection refused, engine died

Backends translate their own exceptions into this tree at the boundary (``raise ... from exc``),
so callers never need to import openai or vllm to handle failures.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendRejected",
    "BackendTimeout",
    "BackendUnavailable",
    "CheckpointError",
    "ConfigError",
    "HowhardError",
    "InvalidRequest",
    "LedgerUnavailable",
    "MissingDependency",
    "PluginError",
    "PolicyError",
    "QueueFull",
    "QuotaExceeded",
    "RateLimited",
    "Rejected",
    "RequestTimeout",
    "RetryableError",
    "SchedulerClosed",
    "ScoringError",
    "UnknownTenant",
    "UsageError",
    "missing_extra",
]


class HowhardError(Exception):
    """Root of every exception howhard raises on purpose."""


class UsageError(HowhardError):
    """The caller misused the API; the message names the parameter, the value and the fix."""


class ConfigError(UsageError, ValueError):
    """A configuration value is invalid."""


class InvalidRequest(UsageError, ValueError):
    """A submitted request is invalid (empty prompt, bad option, …)."""


class UnknownTenant(UsageError, KeyError):
    """The ledger has no quota configured for this tenant and no default applies."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class SchedulerClosed(UsageError):
    """The scheduler is closing or closed and accepts no new requests."""


class PolicyError(UsageError):
    """A policy returned budgets that violate its contract."""


class CheckpointError(UsageError):
    """A checkpoint is corrupt, unsafe to load, or does not match the expected shape."""


class MissingDependency(HowhardError, ImportError):
    """An optional dependency is missing; the message says which extra to install."""


class Rejected(HowhardError):
    """The system worked as configured and declined the request."""


class QuotaExceeded(Rejected):
    """The tenant's remaining quota cannot cover the request."""

    def __init__(self, message: str, *, tenant: str | None = None) -> None:
        super().__init__(message)
        self.tenant = tenant


class QueueFull(Rejected):
    """The bounded submission queue is full (non-blocking submit only)."""


class RequestTimeout(HowhardError):
    """The request's deadline passed before it completed, retries included."""


class LedgerUnavailable(HowhardError):
    """The shared quota store cannot be reached, so nothing was reserved: the request fails closed.

    Transient: the store's own retries are spent; try again once the server is back. Nothing was
    charged for the failed call, and a reservation it may have made expires with its lease.
    """


class ScoringError(HowhardError):
    """A scorer or verifier failed."""


class PluginError(HowhardError):
    """A plug-in (procedure, ledger store …) failed or broke its contract.

    Raised for the request whose call failed, never for the scheduler: a plug-in's own
    exception, a stray cancellation it let escape, or an error type only the scheduler raises.
    """


class BackendError(HowhardError):
    """The model backend failed."""


class BackendRejected(BackendError):
    """The backend refused the request as invalid (HTTP 4xx other than 408/429)."""


class RetryableError(BackendError):
    """A transient backend failure that is worth retrying with backoff."""


class BackendTimeout(RetryableError):
    """One backend call exceeded its timeout."""


class RateLimited(RetryableError):
    """The backend is rate limiting; ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BackendUnavailable(RetryableError):
    """The backend cannot be reached or failed server-side (5xx, connection error, dead engine)."""


def missing_extra(package: str, extra: str) -> MissingDependency:
    """Build the error raised when an optional ``package`` from ``extra`` is not installed."""
    return MissingDependency(
        f"{package} is required for this feature but is not installed; "
        f"install it with: pip install 'howhard[{extra}]'"
    )
