"""With the OpenTelemetry SDK installed, every request becomes a span tree."""

from __future__ import annotations

import pytest

from howhard import Scheduler
from howhard.backends import ScriptedBackend
from howhard.serve.tracing import SpanObserver

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)


@pytest.mark.anyio
async def test_each_request_becomes_a_span_with_queue_and_generate_children() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observer = SpanObserver(provider.get_tracer("test"))
    async with Scheduler(
        backend=ScriptedBackend(), average_budget=2, observers=[observer]
    ) as scheduler:
        result = await scheduler.submit("q", tenant="t")

    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert {"howhard.request", "howhard.queue", "howhard.generate", "howhard.batch"} <= set(spans)
    root = spans["howhard.request"]
    assert root.attributes is not None
    assert root.attributes["howhard.request_id"] == result.request_id
    assert root.attributes["howhard.samples"] == 2
    for child in ("howhard.queue", "howhard.generate"):
        span = spans[child]
        assert span.parent is not None and span.parent.span_id == root.context.span_id
        assert root.start_time <= span.start_time <= span.end_time <= root.end_time
