"""The public port's connections: a deadline on every request, a cap on their number, and
a memory budget for what they have sent.

aiohttp's server bounds an idle connection (keep-alive) but not a slow request: a client
that trickles its headers or body one byte at a time keeps its connection, and whatever
the request holds, for as long as it likes. Here each request gets ``RELAY_CLIENT_TIMEOUT``
from its first byte to its last; a request still incomplete then is answered ``408`` and
its connection closed. Connections beyond ``RELAY_MAX_CONNECTIONS`` are closed as soon as
they are accepted, before they cost a parser or a task.

Every byte a request's sender has sent counts against one :class:`BodyBudget` per process
from the moment it arrives, before aiohttp buffers or parses it, until the request has been
answered: what unverified senders make the relay hold is bounded where it is held, not
later when the handler reads it. (Counted in the handler instead, a thousand connections
each had up to aiohttp's buffer plus one socket read uncounted, and a burst of large
bodies took the process past its limit even with the budget full.) Bytes beyond the budget
are never buffered: the request is answered ``503 overloaded`` and its connection closed.

This is the one place that reaches into aiohttp's request handler (``RequestHandler``): its
``data_received`` is where bytes arrive, before and after parsing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from relay.ingest.body import BodyBudget, BodyBudgetExhausted, ClientTooSlow
from relay.observability import IngestMetrics, log_delivery

log = structlog.get_logger("relay.ingest")

# No software name or version: the answers of the public port say nothing about what runs it.
SERVER_HEADER = "anyformat-relay"

# Written to a connection whose request line or headers did not arrive in time.
_TIMEOUT_BODY = b'{"status": "rejected", "reason": "client_timeout"}\n'
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"Server: %s\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: %d\r\n"
    b"Connection: close\r\n"
    b"\r\n%s"
) % (SERVER_HEADER.encode(), len(_TIMEOUT_BODY), _TIMEOUT_BODY)

_OVERLOADED_BODY = b'{"status": "unavailable", "reason": "overloaded"}\n'
OVERLOADED = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Server: %s\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: %d\r\n"
    b"Retry-After: 5\r\n"
    b"Connection: close\r\n"
    b"\r\n%s"
) % (SERVER_HEADER.encode(), len(_OVERLOADED_BODY), _OVERLOADED_BODY)

# After the deadline the handler gets this long to answer 408 before the connection goes.
ANSWER_GRACE_SECONDS = 0.5


@dataclass(frozen=True)
class ConnectionLimits:
    client_timeout: float
    keepalive_timeout: float
    max_connections: int


class PublicServer(web.Server):
    """aiohttp's low-level server, making :class:`PublicConnection` protocols."""

    def __init__(
        self,
        handler: Any,
        *,
        limits: ConnectionLimits,
        metrics: IngestMetrics,
        budget: BodyBudget,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits
        self.metrics = metrics
        self.budget = budget
        self.open_connections = 0
        self._protocol_kwargs = kwargs | {"keepalive_timeout": limits.keepalive_timeout}

    def __call__(self) -> PublicConnection:
        return PublicConnection(self, loop=self._loop, **self._protocol_kwargs)


class PublicSite(web.TCPSite):
    """aiohttp's TCP site, with the TLS handshake bounded by ``RELAY_CLIENT_TIMEOUT`` too.

    With ``RELAY_TLS_CERT_FILE`` the handshake comes before any byte reaches the protocol
    (and before the connection counts against the cap); asyncio's default lets a silent
    one hold its socket for 60 s.
    """

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, *, handshake_timeout: float,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(runner, host, port, **kwargs)
        self._handshake_timeout = handshake_timeout

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            server,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
            ssl_handshake_timeout=self._handshake_timeout if self._ssl_context else None,
        )


class PublicConnection(RequestHandler):
    __slots__ = ("_admitted", "_deadline", "_held", "_incoming", "_public", "_shedding")

    def __init__(self, manager: PublicServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._public = manager
        self._admitted = False
        self._deadline: asyncio.TimerHandle | None = None
        self._incoming: StreamReader | None = None  # the body of the request being received
        self._held = 0  # bytes taken from the budget for the request being handled
        self._shedding = False  # over the budget: nothing more is read

    @property
    def deadline(self) -> asyncio.TimerHandle | None:
        """When the request being received is cut off; None between requests."""
        return self._deadline

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self._public
        if server.open_connections >= server.limits.max_connections:
            server.metrics.connections_refused.inc()
            transport.close()
            return
        server.open_connections += 1
        self._admitted = True
        super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._admitted:
            self._admitted = False
            self._public.open_connections -= 1
        self._disarm()
        self._give_back()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._shedding:
            return
        try:
            self._public.budget.take(len(data))
        except BodyBudgetExhausted:
            self._shed()
            return
        self._held += len(data)
        if self._deadline is None and data and not (self._force_close or self._close):
            # The first byte of a request: from now on it has client_timeout to arrive.
            self._deadline = self._loop.call_later(
                self._public.limits.client_timeout, self._too_slow
            )
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed and self._messages:
            self._incoming = self._messages[-1][1]
        if self._incoming is not None and self._incoming.is_eof():
            self._disarm()  # headers and body complete: the deadline is met

    async def _handle_request(
        self, request: web.BaseRequest, *args: Any
    ) -> tuple[web.StreamResponse, bool]:
        """The request handled and answered: what its sender sent goes back to the budget.

        A body left unread (refused) is dropped from aiohttp's buffer first: the request's
        objects form reference cycles that may outlive the budget's count of them.
        """
        try:
            return await super()._handle_request(request, *args)
        finally:
            content = request.content
            if getattr(content, "_buffer", None):  # EmptyStreamReader has none
                content._buffer.clear()
                content._size = 0
            self._give_back()

    def _give_back(self) -> None:
        # Everything this connection took: with pipelining, bytes of the next request that
        # arrived meanwhile go back early (an undercount of at most one read, never a leak).
        self._public.budget.give_back(self._held)
        self._held = 0

    def _shed(self) -> None:
        """Over the budget: read nothing more from this connection, answer 503, close."""
        self._shedding = True
        if self.transport is not None:
            self.transport.pause_reading()
        incoming, self._incoming = self._incoming, None
        if incoming is not None:  # the handler reading this body answers 503
            self.close()
            incoming.set_exception(BodyBudgetExhausted())
            self._loop.call_later(ANSWER_GRACE_SECONDS, self.force_close)
        elif self._request_in_progress:  # more after a complete request: end after it
            self.close()
        else:  # the request line or headers: nothing has seen the request yet
            self._public.metrics.unavailable.labels("overloaded").inc()
            log_delivery(
                {"outcome": "unavailable", "reason": "overloaded", "status": 503}
                | {"remote": self._remote()}
            )
            if self.transport is not None:
                self.transport.write(OVERLOADED)
            self.force_close()

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._incoming = None

    def _too_slow(self) -> None:
        self._deadline = None
        incoming, self._incoming = self._incoming, None
        if incoming is None or self.transport is None:
            # Still in the request line or headers: nothing has seen the request yet.
            if self.transport is not None:
                self._refused(408, "client_timeout")
                self.transport.write(REQUEST_TIMEOUT)
            self.force_close()
            return
        # Headers complete, body not: the handler reading it answers 408; the connection
        # goes shortly after whatever the handler does.
        self.close()
        incoming.set_exception(ClientTooSlow())
        self._loop.call_later(ANSWER_GRACE_SECONDS, self.force_close)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The answer to a request aiohttp could not parse (malformed framing, oversized
        or too many headers): one line like any delivery's, no traceback (the internet
        sends these all day), no software named, and the connection closed."""
        if status < 500:
            reason = "malformed_request"
        else:  # an exception escaped the handler: a bug, never answered 500
            log.error("request_internal_error", exc_info=exc)
            status, reason = 503, "internal_error"
        self._refused(status, reason, error=type(exc).__name__ if exc else None)
        document = b'{"status": "rejected", "reason": "%s"}' % reason.encode()
        response = web.Response(
            status=status,
            body=document,
            content_type="application/json",
            headers={"Server": SERVER_HEADER},
        )
        response.force_close()
        return response

    def _refused(self, status: int, reason: str, **extra: Any) -> None:
        """Count and log a request refused before it reached the delivery handler."""
        self._public.metrics.rejected.labels(reason).inc()
        fields = {"outcome": "rejected", "reason": reason, "status": status}
        fields["remote"] = self._remote()
        log_delivery(fields | {key: value for key, value in extra.items() if value})

    def _remote(self) -> str:
        peer = self.peername
        return str(peer[0]) if isinstance(peer, tuple) else str(peer or "")
