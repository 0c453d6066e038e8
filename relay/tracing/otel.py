"""Tracing on: the OpenTelemetry SDK set up from the ``OTEL_*`` variables, and the
relay's and workers' spans, named and shaped as the semantic conventions say (HTTP stable;
messaging as of v1.44, ``messaging.system`` = ``redis``).

Imported only by ``relay.tracing.configure`` once tracing is on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from relay.tracing.base import EntryTrace, Processor, Sends
from relay.version import __version__

PROPAGATOR = TraceContextTextMapPropagator()
SYSTEM = "redis"  # messaging.system: no registered value for Redis Streams
CONTEXT_FIELDS = ("traceparent", "tracestate")
# The delivery's log fields its SERVER span carries, read once it is answered.
ANSWER_ATTRIBUTES = (
    ("remote", "client.address"),
    ("outcome", "relay.outcome"),
    ("reason", "relay.reason"),
    ("id", "relay.webhook_id"),
)


def _resource(service: str) -> Resource:
    """``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES`` first; ``service`` otherwise."""
    resource = Resource.create({})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": service}))
    return resource


def context_fields(span: trace.Span) -> list[bytes]:
    """The entry fields carrying ``span``'s context: ``traceparent`` (and ``tracestate``),
    written as the W3C propagator writes them (formatted here: it is paid per stream)."""
    ctx = span.get_span_context()
    items = [b"traceparent", b"00-%032x-%016x-%02x" % (ctx.trace_id, ctx.span_id, ctx.trace_flags)]
    if ctx.trace_state:
        items += [b"tracestate", ctx.trace_state.to_header().encode()]
    return items


def _context_of(fields: Mapping[str, bytes]) -> otel_context.Context:
    """The trace context an entry carries (an empty one when it carries none)."""
    carrier = {
        name: fields[name].decode(errors="replace") for name in CONTEXT_FIELDS if name in fields
    }
    return PROPAGATOR.extract(carrier) if carrier else otel_context.Context()


def _link_to(ctx: otel_context.Context) -> list[Link]:
    linked = trace.get_current_span(ctx).get_span_context()
    return [Link(linked)] if linked.is_valid else []


def _messaging(operation: str, stream: str) -> dict[str, Any]:
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": stream,
    }


def _type_name(exc: BaseException) -> str:
    """``error.type``: the fully qualified class name, as ``exception.type`` has it."""
    kind = type(exc)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def _hex_ids(span: trace.Span) -> tuple[str, str]:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def add_trace_ids(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: ``trace_id``/``span_id`` of the current span, if any."""
    span = trace.get_current_span()
    if span.get_span_context().is_valid:
        event_dict["trace_id"], event_dict["span_id"] = _hex_ids(span)
    return event_dict


class OtelSends:
    """One ``send {stream}`` span per stream, started before the write: each entry carries
    its own span's context, so the batched writer cannot give one entry another's."""

    def __init__(
        self,
        tracer: trace.Tracer,
        streams: Sequence[str],
        suffix: str = "",
        links: Sequence[Link] = (),
        ctx: otel_context.Context | None = None,
    ) -> None:
        self._spans = [
            tracer.start_span(
                f"send {stream}{suffix}", context=ctx, kind=SpanKind.PRODUCER,
                attributes=_messaging("send", f"{stream}{suffix}"), links=links,
            )
            for stream in streams
        ]  # fmt: skip
        self.fields: Sequence[Sequence[bytes]] = [context_fields(span) for span in self._spans]

    def written(self, ids: Sequence[str | None]) -> None:
        for span, entry_id in zip(self._spans, ids, strict=True):
            if entry_id is None:
                continue  # already there: no entry was sent, and no span is exported
            span.set_attribute("messaging.message.id", entry_id)
            span.end()

    def failed(self, exc: BaseException) -> None:
        for span in self._spans:
            span.set_attribute("error.type", _type_name(exc))
            span.set_status(Status(StatusCode.ERROR))  # no message: it may name a host
            span.end()


class OtelEntryTrace:
    """The attempts of one entry, each a CONSUMER span child of the entry's context."""

    def __init__(self, tracer: trace.Tracer, stream: str, group: str, entry_id: str,
                 fields: Mapping[str, bytes]) -> None:  # fmt: skip
        self._tracer = tracer
        self._stream = stream
        self._parent = _context_of(fields)
        self._attributes = {
            **_messaging("process", stream),
            "messaging.consumer.group.name": group,
            "messaging.message.id": entry_id,
        }
        webhook_id = fields.get("id")
        if webhook_id:
            self._attributes["relay.webhook_id"] = webhook_id.decode(errors="replace")
        self._open: trace.Span | None = None

    def _start(self, attempt: int) -> trace.Span:
        self.settle("")  # an attempt left open (a bug) is ended, never leaked
        self._open = self._tracer.start_span(
            f"process {self._stream}", context=self._parent, kind=SpanKind.CONSUMER,
            attributes={**self._attributes, "relay.attempt": attempt},
        )  # fmt: skip
        return self._open

    @contextlib.contextmanager
    def attempt(self, attempt: int) -> Iterator[None]:
        with trace.use_span(self._start(attempt), end_on_exit=False):
            yield

    def failed(self, exc: BaseException | None) -> None:
        if self._open is not None and exc is not None:
            self._open.record_exception(exc)
            self._open.set_attribute("error.type", _type_name(exc))

    def settle(self, outcome: str) -> None:
        span, self._open = self._open, None
        if span is None:
            return
        if outcome:
            span.set_attribute("relay.outcome", outcome)
        if outcome in ("dead_lettered", "rejected"):
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    @contextlib.contextmanager
    def dead_letter(self, stream: str, attempt: int) -> Iterator[Sends]:
        span = self._open or self._start(attempt)
        with trace.use_span(span, end_on_exit=False):
            sends = OtelSends(self._tracer, [stream], ":dlq")
            dlq = sends._spans[0]
            with trace.use_span(dlq, end_on_exit=False):
                yield sends


class OtelTracing:
    enabled = True

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("relay", __version__)

    @classmethod
    def from_environment(cls, service: str) -> OtelTracing:
        """Sampler (``OTEL_TRACES_SAMPLER``), exporter (``OTEL_EXPORTER_OTLP_*``) and batch
        (``OTEL_BSP_*``) read by the SDK itself; also the global provider, so that
        handlers' own spans (``trace.get_tracer``) join the worker's traces."""
        provider = TracerProvider(resource=_resource(service))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        return cls(provider)

    @contextlib.contextmanager
    def delivery(
        self, method: str, path: str, headers: Mapping[str, str], fields: MutableMapping[str, Any]
    ) -> Iterator[None]:
        # A traceparent from the internet is the sender's claim: a link, never the parent.
        links = _link_to(PROPAGATOR.extract(headers)) if "traceparent" in headers else []
        span = self._tracer.start_span(
            f"{method} {path}", context=otel_context.Context(), kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path, "http.route": path},
            links=links,
        )  # fmt: skip
        fields["trace_id"], fields["span_id"] = _hex_ids(span)
        try:
            with trace.use_span(span, end_on_exit=False, record_exception=False):
                yield
        finally:
            self._answered(span, fields)

    @staticmethod
    def _answered(span: trace.Span, fields: Mapping[str, Any]) -> None:
        status = fields.get("status")
        if isinstance(status, int):
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute("error.type", str(fields.get("reason") or status))
        for name, attribute in ANSWER_ATTRIBUTES:
            value = fields.get(name)
            if value is not None:
                span.set_attribute(attribute, str(value))
        span.end()

    def sends(self, streams: Sequence[str]) -> Sends:
        return OtelSends(self._tracer, streams)

    def entry(
        self, stream: str, group: str, entry_id: str, fields: Mapping[str, bytes]
    ) -> EntryTrace:
        return OtelEntryTrace(self._tracer, stream, group, entry_id, fields)

    @contextlib.contextmanager
    def replay(self, stream: str, fields: Mapping[str, bytes]) -> Iterator[Sends]:
        links = _link_to(_context_of(fields))
        yield OtelSends(self._tracer, [stream], links=links, ctx=otel_context.Context())

    def sweep(self) -> AbstractContextManager[Any]:
        return self._tracer.start_as_current_span("reconcile sweep", kind=SpanKind.INTERNAL)

    def log_processor(self) -> Processor | None:
        return add_trace_ids

    def shutdown(self) -> None:
        self.provider.shutdown()
