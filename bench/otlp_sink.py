"""A local OTLP/HTTP receiver for the benchmark: counts the spans it is sent, keeps none.

It stands where a collector would; it runs in a thread of the benchmark's own process
(on wrk's core when the benchmark pins), so the relay under test pays only for making and
exporting its spans.
"""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.support.redis_server import free_port

ANSWER = ExportTraceServiceResponse().SerializeToString()


class OtlpSink:
    def __init__(self) -> None:
        self.port = free_port()
        self.spans = 0
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _receive(self, request: web.Request) -> web.Response:
        decoded = ExportTraceServiceRequest.FromString(await request.read())
        self.requests += 1
        scopes = [scope for resource in decoded.resource_spans for scope in resource.scope_spans]
        self.spans += sum(len(scope.spans) for scope in scopes)
        return web.Response(body=ANSWER, content_type="application/x-protobuf")

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> OtlpSink:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
