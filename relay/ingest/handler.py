"""``POST {RELAY_WEBHOOK_PATH}``: every answer of the contract's table, and never a 500."""

from __future__ import annotations

import time
from typing import Any

import orjson
import structlog
from aiohttp import web

from relay.ingest.body import (
    BodyBudget,
    BodyBudgetExhausted,
    BodyIncomplete,
    BodyMalformed,
    BodyReader,
    BodyTooLarge,
    ClientTooSlow,
)
from relay.ingest.connections import SERVER_HEADER
from relay.ingest.envelope import Envelope, EnvelopeError, parse_envelope
from relay.ingest.remote import ClientAddress
from relay.ingest.secrets import SecretSource
from relay.ingest.signatures import SignatureError, Verifier
from relay.observability import IngestMetrics, log_delivery
from relay.streams.append import Conflict
from relay.streams.errors import ReplicationTimeout, StreamsUnavailable
from relay.streams.routes import Router
from relay.streams.writer import Entry, FanoutWriter

RETRY_AFTER_SECONDS = "5"
DIGEST_PREFIX = "sha256:"  # how a body's digest is named in the conflict's log line

log = structlog.get_logger("relay.ingest")


def _answer(status: int, document: dict[str, Any], *, retry_after: bool = False) -> web.Response:
    response = web.Response(
        status=status,
        body=orjson.dumps(document),
        content_type="application/json",
        headers={"Server": SERVER_HEADER},
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
        client_address: ClientAddress | None = None,
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
        # Bodies being received hold at most what RELAY_MAX_IN_FLIGHT bodies could.
        self.body_budget = BodyBudget(max_in_flight * max_body_bytes)
        self._client_address = client_address or ClientAddress(())

    def _latency(self, status: int) -> Any:
        """The latency histogram of ``status`` (looked up once: labels() costs a lock)."""
        child = self._latency_children.get(status)
        if child is None:
            child = self._latency_children[status] = self._metrics.latency.labels(str(status))
        return child

    async def handle(self, request: web.BaseRequest) -> web.Response:
        started = time.perf_counter()
        self._metrics.received.inc()
        fields: dict[str, Any] = {"remote": self._client_address(request)}
        try:
            response = await self._handle(request, fields)
        except Exception:
            # A bug, not an input: tell the sender to come back, keep the evidence.
            log.exception("delivery_internal_error")
            self._metrics.unavailable.labels("internal_error").inc()
            fields["outcome"] = "internal_error"
            response = _answer(503, {"status": "unavailable"}, retry_after=True)
        elapsed = time.perf_counter() - started
        self._latency(response.status).observe(elapsed)
        fields["status"] = response.status
        fields["latency_ms"] = round(elapsed * 1000, 3)
        log_delivery(fields)
        return response

    async def _handle(self, request: web.BaseRequest, fields: dict[str, Any]) -> web.Response:
        """Read, verify and parse, then write within one of the in-flight slots.

        The slot is taken only once the body is in and its signature checked: senders that
        trickle bodies or forge signatures never hold one, so they cannot make a genuine
        delivery wait or be refused. The slots bound the work waiting on Redis.
        """
        received_at = time.time_ns() // 1_000_000
        keys = self._secrets.keys
        if not keys:
            return self._unavailable(fields, "no_secret")
        async with BodyReader(self.body_budget, self._limit) as reader:
            try:
                body = await reader.read(request)
            except ClientTooSlow:
                response = self._reject(fields, 408, "client_timeout")
                response.force_close()
                return response
            except BodyIncomplete:
                return self._reject(fields, 400, "incomplete_body")
            except BodyMalformed:
                response = self._reject(fields, 400, "malformed_body")
                response.force_close()
                return response
            except BodyTooLarge:
                response = self._reject(fields, 413, "body_too_large")
                response.force_close()  # the unread rest of the body is never read: close
                return response
            except BodyBudgetExhausted:
                response = self._unavailable(fields, "overloaded")
                response.force_close()
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
            if self.in_flight >= self._max_in_flight:
                # Redis is slow and genuine deliveries pile up: refuse more rather than
                # queue them; the sender retries after Retry-After.
                return self._unavailable(fields, "overloaded")
            self.in_flight += 1
            try:
                return await self._write(body, envelope, message_id, received_at, fields)
            finally:
                self.in_flight -= 1

    async def _write(
        self,
        body: bytes,
        envelope: Envelope,
        message_id: str,
        received_at: int,
        fields: dict[str, Any],
    ) -> web.Response:
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
        except StreamsUnavailable as exc:
            self._metrics.redis_errors.inc()
            fields["error"] = exc.error
            return self._unavailable(fields, "redis_unavailable")

        new_entries = sum(isinstance(result, str) for result in written)
        conflict = next((result for result in written if isinstance(result, Conflict)), None)
        if conflict is not None:
            self._conflict(message_id, conflict, entry.facts().digest)
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

    def _conflict(self, message_id: str, conflict: Conflict, digest: str) -> None:
        """A duplicate id with another body: still answered ``duplicate`` (the sender may be
        retrying), but counted and logged with both digests (never the bodies)."""
        self._metrics.conflicting.inc()
        log.warning(
            "delivery_id_conflict",
            id=message_id,
            first_digest=DIGEST_PREFIX + conflict.digest,
            digest=DIGEST_PREFIX + digest,
        )

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
