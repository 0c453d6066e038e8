"""Tracing on, in this process, its spans kept in memory (the SDK's own exporter)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import relay.tracing
from relay.tracing.otel import OtelTracing


@contextlib.contextmanager
def in_memory_tracing() -> Iterator[tuple[OtelTracing, InMemorySpanExporter]]:
    """This process's tracing while inside: on, exporting each span as it ends."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = OtelTracing(provider)
    previous, relay.tracing._current = relay.tracing._current, tracing
    try:
        yield tracing, exporter
    finally:
        relay.tracing._current = previous
        provider.shutdown()


def traceparent_of(span: object) -> tuple[str, str]:
    """The (trace id, span id) of an SDK span, in ``traceparent``'s hex."""
    context = span.get_span_context()  # type: ignore[attr-defined]
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def ids_in(traceparent: bytes) -> tuple[str, str]:
    _, trace_id, span_id, _ = traceparent.decode().split("-")
    return trace_id, span_id
