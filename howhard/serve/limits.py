"""Per-tenant request limits: a token bucket for the rate and a counter for concurrency.

Checked before a request reaches the scheduler, so a tenant flooding the gateway is turned away
with 429 and ``Retry-After`` instead of filling the shared queue. (Quotas on units, tokens and
cost are the ledger's job; these limit *requests*.)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from howhard.serve.config import TenantConfig

__all__ = ["Limited", "TenantLimiter"]


@dataclass(frozen=True, slots=True)
class Limited:
    """Why a request was turned away, and when retrying can succeed."""

    reason: str
    """``"rate"`` or ``"concurrency"``."""
    retry_after_s: float
    message: str


class _Bucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now


class TenantLimiter:
    """``acquire(tenant)`` admits a request (or says why not); ``release(tenant)`` ends it.

    Every admitted request must be released exactly once. Not thread-safe: the gateway calls it
    from its one event loop.
    """

    def __init__(
        self, tenants: Mapping[str, TenantConfig], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        now = clock()
        self._buckets: dict[str, _Bucket] = {}
        self._limits: dict[str, int] = {}
        for name, tenant in tenants.items():
            if tenant.rate_per_s is not None:
                burst = tenant.burst if tenant.burst is not None else max(1, tenant.rate_per_s)
                self._buckets[name] = _Bucket(tenant.rate_per_s, float(burst), now)
            if tenant.max_concurrency is not None:
                self._limits[name] = tenant.max_concurrency
        self._active: dict[str, int] = {}

    def active(self, tenant: str) -> int:
        """Requests of ``tenant`` admitted and not yet released."""
        return self._active.get(tenant, 0)

    def acquire(self, tenant: str) -> Limited | None:
        """Admit one request of ``tenant`` (``None``) or return why it must wait."""
        limit = self._limits.get(tenant)
        active = self._active.get(tenant, 0)
        if limit is not None and active >= limit:
            return Limited(
                "concurrency",
                1.0,
                f"tenant {tenant!r} already has {active} requests in flight "
                f"(max_concurrency={limit}); wait for one to finish",
            )
        bucket = self._buckets.get(tenant)
        if bucket is not None:
            now = self._clock()
            bucket.tokens = min(bucket.burst, bucket.tokens + (now - bucket.stamp) * bucket.rate)
            bucket.stamp = now
            if bucket.tokens < 1.0:
                wait = (1.0 - bucket.tokens) / bucket.rate
                return Limited(
                    "rate",
                    wait,
                    f"tenant {tenant!r} is over its rate limit (rate_per_s={bucket.rate:g}, "
                    f"burst={bucket.burst:g}); retry in {math.ceil(wait)} s",
                )
            bucket.tokens -= 1.0
        self._active[tenant] = active + 1
        return None

    def release(self, tenant: str) -> None:
        """End one admitted request of ``tenant``."""
        active = self._active.get(tenant, 0)
        if active <= 1:
            self._active.pop(tenant, None)
        else:
            self._active[tenant] = active - 1
