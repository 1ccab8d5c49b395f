"""Prometheus metrics for ``/metrics``: an ``Observer`` of scheduler and gateway events.

Counters and histograms are fed by events (``howhard.scheduler.events``); gauges that describe
state (queue depth, requests in flight, each tenant's spend and reservations) are read from the
schedulers and the ledger when Prometheus scrapes. Every series lives in the gateway's own
registry, so several gateways (tests) never collide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from howhard.ledger import TenantSpend
from howhard.scheduler import SchedulerStats
from howhard.scheduler.events import Event

__all__ = ["CONTENT_TYPE", "Calibration", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_BUDGETS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_ROUNDS = (0, 1, 2, 3, 4, 6, 8, 16)


class Calibration:
    """Running expected calibration error of the probe: predicted vs verified success.

    Each observation is one request with a verifier: the probe's predicted single-sample success
    and the share of its samples the verifier accepted. ECE over ``bins`` equal-width bins of
    the prediction.
    """

    def __init__(self, bins: int = 10) -> None:
        self._bins = bins
        self._count = [0] * bins
        self._predicted = [0.0] * bins
        self._observed = [0.0] * bins

    def add(self, predicted: float, observed: float) -> None:
        """Record one request."""
        b = min(self._bins - 1, max(0, int(predicted * self._bins)))
        self._count[b] += 1
        self._predicted[b] += predicted
        self._observed[b] += observed

    @property
    def count(self) -> int:
        """Requests observed."""
        return sum(self._count)

    def error(self) -> float:
        """The ECE so far (0 with no observations)."""
        total = self.count
        if total == 0:
            return 0.0
        return sum(
            abs(p - o) / total
            for p, o, n in zip(self._predicted, self._observed, self._count, strict=True)
            if n
        )


class _StateCollector(Collector):
    """Gauges read at scrape time from the schedulers and the ledger."""

    def __init__(
        self,
        stats: Callable[[], Mapping[str, SchedulerStats]],
        spend: Callable[[], Mapping[str, TenantSpend]],
        calibration: Mapping[str, Calibration],
        policies: Callable[[], Mapping[str, Mapping[str, float]]] | None = None,
    ) -> None:
        self._stats = stats
        self._spend = spend
        self._calibration = calibration
        self._policies = policies

    def collect(self) -> Iterable[Metric]:
        queued = GaugeMetricFamily(
            "howhard_queue_depth", "Requests waiting in the queue.", labels=["model"]
        )
        in_flight = GaugeMetricFamily(
            "howhard_in_flight", "Requests running on the backend.", labels=["model"]
        )
        for model, stats in self._stats().items():
            queued.add_metric([model], stats.queued)
            in_flight.add_metric([model], stats.in_flight)
        yield queued
        yield in_flight
        settled = GaugeMetricFamily(
            "howhard_tenant_settled_units", "Units charged to the tenant so far.", labels=["tenant"]
        )
        window = GaugeMetricFamily(
            "howhard_tenant_window_units",
            "Units charged within the tenant's quota window.",
            labels=["tenant"],
        )
        reserved = GaugeMetricFamily(
            "howhard_tenant_reserved_units",
            "Units held by reservations not yet settled or refunded.",
            labels=["tenant"],
        )
        cost = GaugeMetricFamily(
            "howhard_tenant_settled_cost", "Cost charged to the tenant so far.", labels=["tenant"]
        )
        for tenant, account in self._spend().items():
            settled.add_metric([tenant], account.settled.units)
            window.add_metric([tenant], account.window.units)
            reserved.add_metric([tenant], account.reserved.units)
            cost.add_metric([tenant], account.settled.cost)
        yield settled
        yield window
        yield reserved
        yield cost
        ece = GaugeMetricFamily(
            "howhard_probe_calibration_error",
            "Expected calibration error of the probe's predicted success on verified requests.",
            labels=["model"],
        )
        for model, calibration in self._calibration.items():
            if calibration.count:
                ece.add_metric([model], calibration.error())
        yield ece
        if self._policies is not None:
            learned = GaugeMetricFamily(
                "howhard_policy",
                "What a learning policy reports: observations, groups, the probe's posterior "
                "weight (beta), calibration_error of its served predictions, shrink toward "
                "uniform, price; and its sequential rounds' stream allocator: rounds_pool "
                "(units deposited, not granted), rounds_spent, rounds_price, "
                "rounds_prior_strength, rounds_prior_shift_spread, rounds_admitted, "
                "rounds_in_flight.",
                labels=["model", "stat"],
            )
            for model, figures in self._policies().items():
                for stat, value in figures.items():
                    learned.add_metric([model, stat], float(value))
            yield learned


class Metrics:
    """The gateway's metric families; ``observer(model)`` subscribes them to a scheduler."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "howhard_http_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "howhard_http_request_seconds",
            "Time from request arrival to response, by route.",
            ["route"],
            buckets=_LATENCY,
            registry=r,
        )
        self.requests = Counter(
            "howhard_requests",
            "Scheduled requests by outcome.",
            ["model", "tenant", "outcome"],
            registry=r,
        )
        self.samples = Counter(
            "howhard_samples", "Compute units (samples) spent.", ["model", "tenant"], registry=r
        )
        self.tokens = Counter(
            "howhard_tokens", "Tokens spent.", ["model", "tenant", "kind"], registry=r
        )
        self.cost = Counter("howhard_cost", "Cost spent.", ["model", "tenant"], registry=r)
        self.budgets = Histogram(
            "howhard_budget", "Units granted per request.", ["model"], buckets=_BUDGETS, registry=r
        )
        self.batch_sizes = Histogram(
            "howhard_batch_size", "Requests per micro-batch.", ["model"], buckets=_SIZES, registry=r
        )
        self.quota_rejections = Counter(
            "howhard_quota_rejections",
            "Requests refused for quota.",
            ["model", "tenant"],
            registry=r,
        )
        self.limited = Counter(
            "howhard_tenant_limited",
            "Requests refused by a tenant's rate or concurrency limit.",
            ["tenant", "reason"],
            registry=r,
        )
        self.auth_failures = Counter(
            "howhard_auth_failures", "Requests refused for a missing or unknown key.", registry=r
        )
        self.disconnects = Counter(
            "howhard_client_disconnects",
            "Requests cancelled (and refunded) because the client went away.",
            ["model", "tenant"],
            registry=r,
        )
        self.backend_errors = Counter(
            "howhard_backend_errors",
            "Requests failed by the backend.",
            ["model", "error"],
            registry=r,
        )
        self.retries = Counter(
            "howhard_backend_retries", "Backend calls retried.", ["model", "error"], registry=r
        )
        self.queue_seconds = Histogram(
            "howhard_queue_wait_seconds",
            "Submit to start of work (batching, policy, queue).",
            ["model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.generation_seconds = Histogram(
            "howhard_generation_seconds",
            "Start of work to result (reservation, backend calls, scoring, settlement).",
            ["model"],
            buckets=_LATENCY,
            registry=r,
        )
        self.total_seconds = Histogram(
            "howhard_request_seconds", "Submit to result.", ["model"], buckets=_LATENCY, registry=r
        )
        self.rounds = Histogram(
            "howhard_rounds", "Sampling rounds per request.", ["model"], buckets=_ROUNDS, registry=r
        )
        self.calibration: dict[str, Calibration] = {}
        self._http: dict[tuple[str, int], tuple[Any, Any]] = {}

    def watch(
        self,
        stats: Callable[[], Mapping[str, SchedulerStats]],
        spend: Callable[[], Mapping[str, TenantSpend]],
        policies: Callable[[], Mapping[str, Mapping[str, float]]] | None = None,
    ) -> None:
        """Publish state gauges read from ``stats()``, ``spend()`` and ``policies()`` at scrapes."""
        self.registry.register(_StateCollector(stats, spend, self.calibration, policies))

    def render(self) -> bytes:
        """The exposition text for ``GET /metrics``."""
        return generate_latest(self.registry)

    def observer(self, model: str) -> Callable[[Event], None]:
        """An ``Observer`` for the scheduler serving ``model``."""
        requests = self.requests
        samples, tokens, cost = self.samples, self.tokens, self.cost
        budgets = self.budgets.labels(model)
        queue_s = self.queue_seconds.labels(model)
        generation_s = self.generation_seconds.labels(model)
        total_s = self.total_seconds.labels(model)
        batch_sizes = self.batch_sizes.labels(model)

        # labels() costs a lookup and a lock each time: keep each tenant's series at hand.
        per_tenant: dict[str, tuple[Any, ...]] = {}

        def series(tenant: str) -> tuple[Any, ...]:
            found = per_tenant.get(tenant)
            if found is None:
                found = per_tenant[tenant] = (
                    requests.labels(model, tenant, "answered"),
                    requests.labels(model, tenant, "abstained"),
                    samples.labels(model, tenant),
                    tokens.labels(model, tenant, "prompt"),
                    tokens.labels(model, tenant, "completion"),
                    cost.labels(model, tenant),
                )
            return found

        def on_event(event: Event) -> None:
            f = event.fields
            name = event.name
            if name == "request.done":
                answered, abstained, spent, prompt, completion, charged = series(f["tenant"])
                (abstained if f["outcome"] == "abstained" else answered).inc()
                spent.inc(f["samples"])
                prompt.inc(f["prompt_tokens"])
                completion.inc(f["completion_tokens"])
                charged.inc(f["cost"])
                budgets.observe(f["budget"])
                queue_s.observe(f["queue_s"])
                generation_s.observe(max(0.0, f["latency_s"] - f["queue_s"]))
                total_s.observe(f["latency_s"])
            elif name == "batch.formed":
                batch_sizes.observe(f["size"])
            elif name == "quota.rejected":
                requests.labels(model, f["tenant"], "quota_exceeded").inc()
                self.quota_rejections.labels(model, f["tenant"]).inc()
            elif name == "request.failed":
                error = f["error"]
                requests.labels(model, f["tenant"], "failed").inc()
                if error.startswith("Backend") or error in ("RateLimited", "RetryableError"):
                    self.backend_errors.labels(model, error).inc()
            elif name == "backend.retry":
                self.retries.labels(model, f["error"]).inc()

        return on_event

    def on_gateway_event(self, event: Event) -> None:
        """The ``Observer`` for the gateway's own events."""
        f: Mapping[str, Any] = event.fields
        name = event.name
        if name == "http.request":
            key = (f["route"], f["status"])
            pair = self._http.get(key)
            if pair is None:
                pair = self._http[key] = (
                    self.http_requests.labels(key[0], str(key[1])),
                    self.http_seconds.labels(key[0]),
                )
            pair[0].inc()
            pair[1].observe(f["seconds"])
        elif name == "request.served":
            model = f["model"]
            self.rounds.labels(model).observe(f["rounds"])
            predicted, observed = f.get("predicted"), f.get("verified")
            if predicted is not None and observed is not None:
                self.calibration.setdefault(model, Calibration()).add(predicted, observed)
        elif name == "tenant.limited":
            self.limited.labels(f["tenant"], f["reason"]).inc()
        elif name == "auth.rejected":
            self.auth_failures.inc()
        elif name == "client.disconnected":
            self.disconnects.labels(f["model"], f["tenant"]).inc()
