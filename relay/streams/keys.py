"""Key layout that works unchanged on Redis Cluster.

Every Lua step touches one stream and that stream's dedupe set, so both keys must hash to
the same slot. Redis hashes only the first non-empty ``{...}`` of a key when there is one,
else the whole key; the dedupe key therefore carries the stream's own hash tag.
"""

from __future__ import annotations

DEDUPE_PREFIX = "relay:dedupe:"


def hash_tag(key: str) -> str:
    """The part of ``key`` that Redis Cluster hashes (the cluster spec's rule)."""
    start = key.find("{")
    if start != -1:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def check_stream_name(name: str) -> str:
    """Reject stream names whose slot no companion key could share.

    A name without a hash tag is hashed whole, so the companion key must embed it as
    ``{name}``, which is impossible when the name itself contains ``}``.
    """
    if not name:
        raise ValueError("stream name must not be empty")
    if "}" in hash_tag(name):
        raise ValueError(
            f"stream name {name!r}: braces are only allowed as a Redis Cluster hash tag "
            "such as '{team}:events'"
        )
    return name


def dedupe_key(stream: str) -> str:
    """The sorted set of event ids already written to ``stream`` (same slot as the stream).

    ``relay:dedupe:{<tag>}:<stream>``: the tag holds no ``}``, so the stream name after it
    is recovered unambiguously and two streams never share a set.
    """
    return f"{DEDUPE_PREFIX}{{{hash_tag(stream)}}}:{stream}"


def trail_records_key(stream: str) -> str:
    """What each event's append recorded in ``stream`` (hash: message id or dead-letter
    mark -> entry id, body digest, duplicates, ...; same slot; see append_once.lua)."""
    return f"relay:trail:{{{hash_tag(stream)}}}:{stream}"


def extraction_index_key(stream: str) -> str:
    """The events of each extraction id whose first stream was ``stream`` (hash: extraction
    id -> their message ids, newline-separated; same slot; see append_once.lua)."""
    return f"relay:extractions:{{{hash_tag(stream)}}}:{stream}"


def pause_key(stream: str) -> str:
    """The consumer groups of ``stream`` an operator paused (hash: group -> when, Unix ms)."""
    return f"relay:paused:{{{hash_tag(stream)}}}:{stream}"


def trim_marks_key(stream: str) -> str:
    """Where the trimmer remembers positions in ``stream`` (same slot; see trim.lua)."""
    return f"relay:trim:{{{hash_tag(stream)}}}:{stream}"


def registration_key(prefix: str, public_url: str) -> str:
    """The registration record for one public URL (JSON; see ``relay.registration.record``)."""
    return f"{prefix}:registration:{{{public_url}}}"
