"""The AsyncAPI 3.0 document of the streams a relay writes (``relay asyncapi``).

One channel per stream the routes can write and one per dead-letter stream; the messages'
payloads reference the JSON Schemas of ``relay.schemas``. AsyncAPI's Redis binding defines
nothing, so what a consumer needs besides the schema (the Redis key, which events reach the
stream, the consumer groups, trimming, the dead-letter calls) is said by one documented
extension per channel, ``x-relay``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from relay.redis.keys import dlq_stream, events_stream, unrouted_stream
from relay.schemas import NAMES, load
from relay.streams.routes import ANY_EVENT, Router, RoutesFile
from relay.version import __version__

ASYNCAPI_VERSION = "3.0.0"
EXTENSION = "x-relay"
# Stripped when a schema is embedded: AsyncAPI's schema dialect is its own.
JSON_SCHEMA_ONLY = ("$schema", "$id")


@dataclass(frozen=True)
class Trimming:
    """The relay's retention (RELAY_STREAM_MAXLEN, _MAX_AGE, _HARD_MAXLEN)."""

    maxlen: int
    max_age_seconds: int
    hard_maxlen: int


def channel_id(name: str, taken: set[str]) -> str:
    """An AsyncAPI-safe id for the key ``name`` (``anyformat:events`` -> ``anyformat.events``),
    unique among ``taken``."""
    base = re.sub(r"[^A-Za-z0-9_.\-]", "_", name.replace(":", "."))
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    taken.add(candidate)
    return candidate


def _address(key: str) -> str | None:
    """AsyncAPI reads ``{…}`` in an address as a parameter: a stream with a Cluster hash tag
    gets no address, its key is in the extension."""
    return None if "{" in key else key


def _routed(stream: str, routes: RoutesFile | None, prefix: str, events: Sequence[str]) -> Any:
    """Which deliveries reach ``stream``: a list of ``{event, workflow_id?}``."""
    if routes is None:
        if stream == events_stream(prefix):
            return [{"event": event} for event in events]
        router = Router(prefix)
        return [{"event": e} for e in events if router.per_event_stream(e) == stream]
    matched: list[dict[str, str]] = []
    for rule in routes.rules:
        if stream in rule.streams:
            matched.append({"event": rule.event, **({"workflow_id": rule.workflow_id}
                                                     if rule.workflow_id else {})})  # fmt: skip
    if stream == unrouted_stream(prefix):
        matched.append({"event": ANY_EVENT, "matching_no_rule": "true"})
    return matched


def _server(redis_url: str, cluster: bool) -> dict[str, Any]:
    """Where the streams are, without the URL's credentials."""
    parts = urlsplit(redis_url)
    host = parts.hostname or "localhost"
    server: dict[str, Any] = {
        "host": f"{host}:{parts.port or 6379}",
        "protocol": "rediss" if parts.scheme == "rediss" else "redis",
        "description": "The relay's Redis (RELAY_REDIS_URL)"
        + (": a Redis Cluster." if cluster else "."),
    }
    if parts.path.strip("/"):
        server["pathname"] = parts.path
    return server


def _schemas() -> dict[str, Any]:
    out = {}
    for name in NAMES:
        schema = load(name)
        for keyword in JSON_SCHEMA_ONLY:
            schema.pop(keyword, None)
        out[name] = schema
    return out


def _messages() -> dict[str, Any]:
    payloads = {e: {"$ref": f"#/components/schemas/{e}"} for e in NAMES if e.startswith("extr")}
    return {
        "streamEntry": {
            "name": "streamEntry",
            "title": "Stream entry",
            "summary": "One verified delivery (or a reconciled event); read with XREADGROUP.",
            "contentType": "application/json",
            "payload": {"$ref": "#/components/schemas/stream-entry"},
            EXTENSION: {
                "encoding": "the message is a Redis stream entry: a flat map of string "
                "fields; its `payload` field holds the delivery body as JSON text",
                "payload_field_schemas": payloads,
            },
        },
        "deadLetter": {
            "name": "deadLetter",
            "title": "Dead letter",
            "summary": "An entry whose attempts ran out or that was rejected.",
            "contentType": "application/json",
            "payload": {"$ref": "#/components/schemas/dlq-entry"},
        },
    }


def build(
    *,
    prefix: str,
    events: Sequence[str],
    routes: RoutesFile | None,
    trimming: Trimming,
    redis_url: str,
    cluster: bool = False,
    groups: Iterable[str] = (),
    dlq_maxlen: int,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document for the streams these routes can write."""
    streams = Router(prefix, routes).known_streams(events)
    group_list = sorted(set(groups))
    taken: set[str] = set()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for stream in streams:
        dlq = dlq_stream(stream)
        sid, did = channel_id(stream, taken), channel_id(dlq, taken)
        channels[sid] = {
            "address": _address(stream),
            "title": stream,
            "description": f"Stream `{stream}`: consume through a consumer group "
            "(XREADGROUP), acknowledge after the handler (XACK).",
            "messages": {"streamEntry": {"$ref": "#/components/messages/streamEntry"}},
            EXTENSION: {
                "kind": "stream",
                "key": stream,
                "dlq": dlq,
                "routed": _routed(stream, routes, prefix, events),
                "groups": group_list,
                "trimming": {
                    "maxlen": trimming.maxlen,
                    "max_age_seconds": trimming.max_age_seconds,
                    "hard_maxlen": trimming.hard_maxlen,
                    "consumer_aware": True,
                },
            },
        }
        channels[did] = {
            "address": _address(dlq),
            "title": dlq,
            "description": f"Dead letters of `{stream}`: written once per entry and group "
            "(mark `dead/<group>/<entry id>`), replayed with `relay dlq replay`.",
            "messages": {"deadLetter": {"$ref": "#/components/messages/deadLetter"}},
            EXTENSION: {
                "kind": "dlq",
                "key": dlq,
                "stream": stream,
                "trimming": {"maxlen": dlq_maxlen, "approximate": True},
            },
        }
        operations[f"consume.{sid}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{sid}"},
            "summary": f"A worker's consumer group reads `{stream}`.",
            "messages": [{"$ref": f"#/channels/{sid}/messages/streamEntry"}],
        }
        operations[f"deadLetter.{did}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{did}"},
            "summary": f"A worker moves an entry of `{stream}` it gives up on.",
            "messages": [{"$ref": f"#/channels/{did}/messages/deadLetter"}],
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "AnyFormat Relay streams",
            "version": __version__,
            "description": "The Redis Streams a relay writes verified AnyFormat webhooks "
            "to, and their dead-letter streams. Each channel's `x-relay` extension says "
            "what AsyncAPI's Redis binding cannot: the key, the routing, the groups and "
            "the trimming (docs/workers.md).",
        },
        "defaultContentType": "application/json",
        "servers": {"redis": _server(redis_url, cluster)},
        "channels": channels,
        "operations": operations,
        "components": {"schemas": _schemas(), "messages": _messages()},
    }
