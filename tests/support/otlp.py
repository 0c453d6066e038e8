"""An OTLP/HTTP trace receiver on loopback: what a collector would get, decoded.

It answers ``POST /v1/traces`` as a collector does and decodes each
``ExportTraceServiceRequest`` with the OpenTelemetry project's own protobuf definitions
(``opentelemetry-proto``), so the tests read the spans the real exporter sent over a real
socket. It runs in a thread of its own: a test may block (waiting on a process) while the
processes under test export.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from tests.support.redis_server import free_port
from tests.support.waiting import wait_for_sync

KINDS = {
    ProtoSpan.SPAN_KIND_INTERNAL: "INTERNAL",
    ProtoSpan.SPAN_KIND_SERVER: "SERVER",
    ProtoSpan.SPAN_KIND_CLIENT: "CLIENT",
    ProtoSpan.SPAN_KIND_PRODUCER: "PRODUCER",
    ProtoSpan.SPAN_KIND_CONSUMER: "CONSUMER",
}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def _attributes(items: Any) -> dict[str, Any]:
    return {item.key: _value(item.value) for item in items if isinstance(item, KeyValue)}


@dataclass(frozen=True)
class Span:
    """One exported span, ids in the hex of ``traceparent``."""

    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    links: list[tuple[str, str]]
    events: list[tuple[str, dict[str, Any]]]
    status: int  # 0 unset, 1 ok, 2 error
    trace_state: str = ""
    flags: int = field(default=0, compare=False)

    def is_in(self, traceparent: bytes | str) -> bool:
        """Whether ``traceparent`` (W3C) names this span, sampled."""
        text = traceparent.decode() if isinstance(traceparent, bytes) else traceparent
        version, trace_id, span_id, flags = text.split("-")
        sampled = int(flags, 16) & 1
        return (version, trace_id, span_id, sampled) == ("00", self.trace_id, self.span_id, 1)


def _spans(request: ExportTraceServiceRequest) -> list[Span]:
    found: list[Span] = []
    for resource_spans in request.resource_spans:
        service = str(_attributes(resource_spans.resource.attributes).get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                found.append(
                    Span(
                        service=service,
                        name=span.name,
                        kind=KINDS.get(span.kind, str(span.kind)),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        attributes=_attributes(span.attributes),
                        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                        events=[(e.name, _attributes(e.attributes)) for e in span.events],
                        status=span.status.code,
                        trace_state=span.trace_state,
                        flags=span.flags,
                    )
                )
    return found


class OtlpReceiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.requests = 0
        self._spans: list[Span] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def endpoint(self) -> str:
        """For ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the exporter adds ``/v1/traces``)."""
        return f"http://127.0.0.1:{self.port}"

    async def _receive(self, request: web.Request) -> web.Response:
        decoded = ExportTraceServiceRequest.FromString(await request.read())
        with self._lock:
            self.requests += 1
            self._spans += _spans(decoded)
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> OtlpReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)

    def wait_for(self, predicate: Callable[[list[Span]], bool], timeout: float = 20) -> list[Span]:
        """The spans received once ``predicate`` holds of them (polled, with a deadline)."""

        def received() -> list[Span] | None:
            spans = self.spans()
            return spans if predicate(spans) else None

        return wait_for_sync(
            received,
            what="the spans expected",
            within=timeout,
            interval=0.02,
            context=lambda: sorted((s.kind, s.name) for s in self.spans()),
        )


def tracing_env(receiver: OtlpReceiver, service: str | None = None) -> dict[str, str]:
    """The standard variables pointing a process at ``receiver``, exporting within 50 ms."""
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_TRACES_SAMPLER": "always_on",
    }
    if service is not None:
        env["OTEL_SERVICE_NAME"] = service
    return env
