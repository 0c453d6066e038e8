"""The read-only answers of the operator API: streams, registration, reconciliation.

Plain async functions returning the JSON documents, so the API's routes and the console's
pages show the very same figures. The stream figures are those of ``/metrics``
(:func:`relay.streams.health.sample`), read fresh rather than from the last sample.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from relay.reconcile.reconciler import plan
from relay.reconcile.state import SharedState
from relay.redis.client import Redis
from relay.registration.keeper import RegistrationStatus
from relay.registration.record import SecretCodec, load_record
from relay.settings import Settings
from relay.streams.health import StreamHealth, sample

# Whether the operator paused a group (stream, group): the pause records' reader.
PausedReader = Callable[[str, str], Awaitable[bool]]


def iso(moment: float | None) -> str | None:
    """Unix seconds as ISO 8601 UTC (milliseconds), the API's one time format."""
    if moment is None:
        return None
    return (
        datetime.fromtimestamp(moment, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def fingerprint(secret: str) -> str:
    """Names a secret without giving it away: the first 16 hex digits of its SHA-256."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:16]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def streams_overview(
    redis: Redis, streams: Sequence[str], *, paused: PausedReader | None = None
) -> dict[str, Any]:
    """``GET /api/streams``: every stream the routes can write, its groups and consumers."""
    health = await sample(redis, streams)
    details = await _ends_and_consumers(redis, health)
    documents = []
    for row, (first, last, consumers) in zip(health, details, strict=True):
        groups = []
        for group in row.groups:
            groups.append(
                {
                    "name": group.name,
                    "consumers": consumers.get(group.name, []),
                    "pending": group.pending,
                    "lag": group.lag,
                    "oldest_pending_seconds": group.oldest_pending_seconds,
                    "paused": await paused(row.stream, group.name) if paused else False,
                }
            )
        documents.append(
            {
                "stream": row.stream,
                "length": row.length,
                "first_id": first,
                "last_id": last,
                "dlq_length": row.dlq_length,
                "groups": groups,
            }
        )
    return {"streams": documents}


async def _ends_and_consumers(
    redis: Redis, health: Sequence[StreamHealth]
) -> list[tuple[str | None, str | None, dict[str, list[dict[str, Any]]]]]:
    """First and last entry id of each stream and each group's consumers: one pipelined
    round trip (split per node on a cluster: every command names one key)."""
    async with redis.pipeline(transaction=False) as pipe:
        for row in health:
            pipe.xrange(row.stream, count=1)
            pipe.xrevrange(row.stream, count=1)
            for group in row.groups:
                pipe.xinfo_consumers(row.stream, group.name)
        replies = list(await pipe.execute())
    answers = []
    for row in health:
        first, last = replies.pop(0), replies.pop(0)
        consumers = {}
        for group in row.groups:
            consumers[group.name] = [
                {
                    "name": _text(consumer["name"]),
                    "pending": int(consumer["pending"]),
                    "idle_seconds": int(consumer["idle"]) / 1000,
                }
                for consumer in replies.pop(0)
            ]
        answers.append(
            (
                _text(first[0][0]) if first else None,
                _text(last[0][0]) if last else None,
                consumers,
            )
        )
    return answers


async def registration_overview(
    redis: Redis, settings: Settings, status: RegistrationStatus
) -> dict[str, Any]:
    """``GET /api/registration``: the subscription, its state and the secrets' fingerprints
    (never a secret). With registration off, the static secrets' fingerprints."""
    static = [fingerprint(secret) for secret in settings.webhook_secrets]
    document: dict[str, Any] = {
        "registering": settings.self_register,
        "webhook_id": None,
        "url": settings.public_url,
        "events": list(settings.events),
        "created_at": None,
        "state": status.state if settings.self_register else "off",
        "last_checked": iso(status.checked_at),
        "last_api_error": status.error,
        "secret_fingerprints": static,
        "retiring": [],
    }
    if settings.public_url is None:
        return document
    record = await load_record(
        redis,
        settings.stream_prefix,
        settings.public_url,
        SecretCodec(settings.secret_encryption_key),
    )
    if record is None:
        if settings.self_register:
            document["state"] = "unregistered" if status.checked_at else status.state
        return document
    document.update(
        webhook_id=record.id,
        url=record.url,
        events=record.events,
        created_at=record.created_at,
        secret_fingerprints=[fingerprint(secret) for secret in record.secrets] + static,
        retiring=[
            {"webhook_id": old.id, "delete_after": iso(old.delete_after)} for old in record.retiring
        ],
    )
    return document


async def reconciliation_overview(
    redis: Redis, settings: Settings, *, now: float
) -> dict[str, Any]:
    """``GET /api/reconciliation``: the last sweep (any relay's), the next one, a pending
    gap; what every replica reads alike from Redis."""
    state = SharedState(redis, settings.stream_prefix)
    shared, last = await state.read(), await state.last_sweep()
    interval = settings.reconcile_interval
    due = plan(shared, now, interval, settings.reconcile_lookback)
    if not settings.reconciling:
        next_sweep = None
    elif due is not None:
        next_sweep = now  # due now: the next tick of a sweeper takes it
    else:
        basis = shared.last_until if shared.last_until is not None else shared.epoch
        next_sweep = basis + interval if basis is not None else None
    return {
        "enabled": settings.reconciling,
        "interval_seconds": interval,
        "last_sweep": _sweep_document(last),
        "next_sweep": iso(next_sweep),
        "gap_since": iso(shared.gap_since),
        "last_error": last.get("error") if last else None,
    }


def _sweep_document(report: dict[str, Any] | None) -> dict[str, Any] | None:
    if report is None:
        return None
    return {
        "outcome": report.get("outcome"),
        "reason": report.get("reason"),
        "started": iso(report.get("started_at")),
        "finished": iso(report.get("finished_at")),
        "window": {"since": iso(report.get("since")), "until": iso(report.get("until"))},
        "runs_seen": report.get("runs_seen"),
        "events_written": report.get("events_written"),
    }


@dataclass(frozen=True)
class Overview:
    """What the three answers are read from, bound once for the API and the console."""

    redis: Redis
    settings: Settings
    stream_names: Callable[[], Sequence[str]]
    registration_status: RegistrationStatus
    paused: PausedReader | None = None

    async def streams(self) -> dict[str, Any]:
        return await streams_overview(self.redis, self.stream_names(), paused=self.paused)

    async def registration(self) -> dict[str, Any]:
        return await registration_overview(self.redis, self.settings, self.registration_status)

    async def reconciliation(self) -> dict[str, Any]:
        return await reconciliation_overview(self.redis, self.settings, now=time.time())
