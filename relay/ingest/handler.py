"""``POST {RELAY_WEBHOOK_PATH}``: every answer of the contract's table, and never a 500."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import structlog
from aiohttp import web
from redis.exceptions import RedisError

from relay.ingest.envelope import EnvelopeError, parse_envelope
from relay.ingest.secrets import SecretSource
from relay.ingest.signatures import SignatureError, Verifier
from relay.observability import IngestMetrics, log_delivery
from relay.streams.replication import ReplicationTimeout
from relay.streams.routes import Router
from relay.streams.writer import Entry, FanoutWriter

RETRY_AFTER_SECONDS = "5"

log = structlog.get_logger("relay.ingest")


class BodyTooLarge(Exception):
    pass


class BodyIncomplete(Exception):
    """The sender went away before the whole body arrived."""


async def read_limited(request: web.BaseRequest, limit: int) -> bytes:
    """The body, reading at most ``limit + 1`` bytes whatever the framing (chunked too)."""
    length = request.content_length
    try:
        if length is not None:
            if length > limit:
                raise BodyTooLarge
            return await request.content.readexactly(length)
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.read(limit + 1 - size):
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
        return b"".join(chunks)
    except (asyncio.IncompleteReadError, ConnectionError):
        raise BodyIncomplete from None


def _answer(status: int, document: dict[str, Any], *, retry_after: bool = False) -> web.Response:
    response = web.Response(
        status=status, body=orjson.dumps(document), content_type="application/json"
    )
    if retry_after:
        response.headers["Retry-After"] = RETRY_AFTER_SECONDS
    return response


class IngestHandler:
    def __init__(
        self,
        *,
        verifier: Verifier,
        secrets: SecretSource,
        router: Router,
        writer: FanoutWriter,
        metrics: IngestMetrics,
        max_body_bytes: int,
        max_in_flight: int = 512,
    ) -> None:
        self._verifier = verifier
        self._secrets = secrets
        self._router = router
        self._writer = writer
        self._metrics = metrics
        self._limit = max_body_bytes
        self._latency_children: dict[int, Any] = {}
        self._max_in_flight = max_in_flight
        self.in_flight = 0

    def _latency(self, status: int) -> Any:
        """The latency histogram of ``status`` (looked up once: labels() costs a lock)."""
        child = self._latency_children.get(status)
        if child is None:
            child = self._latency_children[status] = self._metrics.latency.labels(str(status))
        return child

    async def handle(self, request: web.BaseRequest) -> web.Response:
        started = time.perf_counter()
        self._metrics.received.inc()
        fields: dict[str, Any] = {}
        if self.in_flight >= self._max_in_flight:
            # Redis is slow and deliveries pile up: refuse more before reading their
            # bodies, so memory stays bounded; the sender retries after Retry-After.
            response = self._unavailable(fields, "overloaded")
            response.force_close()
        else:
            self.in_flight += 1
            try:
                response = await self._handle(request, fields)
            except Exception:
                # A bug, not an input: tell the sender to come back, keep the evidence.
                log.exception("delivery_internal_error")
                self._metrics.unavailable.labels("internal_error").inc()
                fields["outcome"] = "internal_error"
                response = _answer(503, {"status": "unavailable"}, retry_after=True)
            finally:
                self.in_flight -= 1
        elapsed = time.perf_counter() - started
        self._latency(response.status).observe(elapsed)
        fields["status"] = response.status
        fields["latency_ms"] = round(elapsed * 1000, 3)
        log_delivery(fields)
        return response

    async def _handle(self, request: web.BaseRequest, fields: dict[str, Any]) -> web.Response:
        received_at = time.time_ns() // 1_000_000
        keys = self._secrets.keys
        if not keys:
            return self._unavailable(fields, "no_secret")
        try:
            body = await read_limited(request, self._limit)
        except BodyIncomplete:
            return self._reject(fields, 400, "incomplete_body")
        except BodyTooLarge:
            response = self._reject(fields, 413, "body_too_large")
            response.force_close()  # the unread rest of the body is never read: close
            return response
        try:
            message_id = self._verifier.verify(request.headers, body, keys, time.time())
        except SignatureError as exc:
            return self._reject(fields, 401, exc.reason)
        fields["id"] = message_id
        try:
            envelope = parse_envelope(body)
        except EnvelopeError as exc:
            return self._reject(fields, 400, "invalid_body", detail=str(exc))
        fields["event"] = envelope.event

        streams = self._router.streams_for(envelope.event, envelope.workflow_id)
        entry = Entry(
            id=message_id,
            event=envelope.event,
            payload=body,
            received_at=received_at,
            extraction_id=envelope.extraction_id,
            workflow_id=envelope.workflow_id,
            content_mark=envelope.content_mark(),
        )
        try:
            written = await self._writer.write(entry, streams)
        except ReplicationTimeout as exc:
            # Written (or found written) on the master, not yet on enough replicas: the
            # re-send dedupes and waits again.
            fields["replicas"] = exc.acknowledged
            return self._unavailable(fields, "replication_timeout")
        except RedisError as exc:
            self._metrics.redis_errors.inc()
            fields["error"] = type(exc).__name__
            return self._unavailable(fields, "redis_unavailable")

        new_entries = len(written) - written.count(None)
        if new_entries:
            outcome = "accepted"
            self._metrics.accepted.inc()
            self._metrics.entries_written.inc(new_entries)
        else:
            outcome = "duplicate"
            self._metrics.duplicate.inc()
        fields["outcome"] = outcome
        fields["streams"] = len(streams)
        fields["written"] = new_entries
        return _answer(200, {"status": outcome, "id": message_id})

    def _reject(
        self, fields: dict[str, Any], status: int, reason: str, detail: str | None = None
    ) -> web.Response:
        self._metrics.rejected.labels(reason).inc()
        fields.update(outcome="rejected", reason=reason)
        document = {"status": "rejected", "reason": reason}
        if detail:
            document["detail"] = detail
        return _answer(status, document)

    def _unavailable(self, fields: dict[str, Any], reason: str) -> web.Response:
        self._metrics.unavailable.labels(reason).inc()
        fields.update(outcome="unavailable", reason=reason)
        return _answer(503, {"status": "unavailable", "reason": reason}, retry_after=True)
