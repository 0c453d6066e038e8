"""Handlers for the traced worker processes (``--handler tests.tracing.handlers:…``)."""

from __future__ import annotations

from opentelemetry import trace

from relay.worker import Event, Reject

tracer = trace.get_tracer("tests.tracing.handlers")


async def fails_once(event: Event) -> None:
    """Bills (a span of its own) and fails the first attempt: retried once, then handled."""
    with tracer.start_as_current_span("bill"):
        if event.attempt == 1:
            raise ConnectionError("billing API unreachable")


async def rejects(event: Event) -> None:
    raise Reject("not ours")
