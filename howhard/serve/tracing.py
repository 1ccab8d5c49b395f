"""OpenTelemetry spans from howhard's events (optional: needs ``opentelemetry-sdk``).

``SpanObserver(tracer)`` is an ``Observer``: pass it to ``Gateway(config, observers=[...])`` (or
to a ``Scheduler``) and every request becomes a ``howhard.request`` span with its
``howhard.queue`` (submit → batch → policy → dispatch) and ``howhard.generate`` (reservation →
backend calls → scoring → settlement) children, every micro-batch a ``howhard.batch`` span and
every retried backend call a ``howhard.backend.retry`` span. Spans are built when the event
arrives, with the start and end times the event reports, so the scheduler's hot path carries no
tracing context. ``serve`` installs one automatically when the SDK is importable and
``OTEL_SERVICE_NAME`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.
"""

from __future__ import annotations

import os
import time
from typing import Any

from howhard.scheduler.events import Event

__all__ = ["SpanObserver", "from_environment"]


class SpanObserver:
    """Turns events into spans on ``tracer`` (an OpenTelemetry ``Tracer``)."""

    def __init__(self, tracer: Any) -> None:
        from opentelemetry import trace

        self._trace = trace
        self._tracer = tracer
        # Events carry monotonic times; spans want wall-clock nanoseconds.
        self._offset_ns = time.time_ns() - time.monotonic_ns()

    def _ns(self, monotonic_s: float) -> int:
        return int(monotonic_s * 1e9) + self._offset_ns

    def __call__(self, event: Event, /) -> None:
        """Emit the spans ``event`` describes (others are ignored)."""
        f = event.fields
        name = event.name
        if name in ("request.done", "request.failed"):
            end = event.time
            start = end - f["latency_s"]
            attributes = {
                "howhard.request_id": f["request_id"],
                "howhard.tenant": f["tenant"],
                "howhard.budget": f["budget"],
            }
            if name == "request.done":
                attributes |= {
                    "howhard.samples": f["samples"],
                    "howhard.tokens": f["tokens"],
                    "howhard.cost": f["cost"],
                    "howhard.outcome": f["outcome"],
                }
            else:
                attributes["howhard.error"] = f["error"]
            root = self._tracer.start_span(
                "howhard.request", start_time=self._ns(start), attributes=attributes
            )
            if name == "request.failed":
                root.set_status(self._trace.Status(self._trace.StatusCode.ERROR, f["error"]))
            else:
                context = self._trace.set_span_in_context(root)
                queued = start + f["queue_s"]
                for child, begin, finish in (
                    ("howhard.queue", start, queued),
                    ("howhard.generate", queued, end),
                ):
                    span = self._tracer.start_span(
                        child, context=context, start_time=self._ns(begin)
                    )
                    span.end(end_time=self._ns(finish))
            root.end(end_time=self._ns(end))
        elif name == "batch.formed":
            span = self._tracer.start_span(
                "howhard.batch",
                start_time=self._ns(event.time - f["wait_s"]),
                attributes={"howhard.batch_size": f["size"]},
            )
            span.end(end_time=self._ns(event.time))
        elif name == "backend.retry":
            span = self._tracer.start_span(
                "howhard.backend.retry",
                start_time=self._ns(event.time),
                attributes={
                    "howhard.model": f["model"],
                    "howhard.attempt": f["attempt"],
                    "howhard.error": f["error"],
                },
            )
            span.end(end_time=self._ns(event.time + f["delay_s"]))


def from_environment() -> SpanObserver | None:
    """A ``SpanObserver`` exporting over OTLP when the SDK is installed and configured by env.

    Configured means ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_SERVICE_NAME`` is set; otherwise
    (or without the SDK and its OTLP exporter) tracing stays off and costs nothing.
    """
    if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_SERVICE_NAME")):
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": "howhard"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return SpanObserver(trace.get_tracer("howhard.serve"))
