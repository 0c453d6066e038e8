"""The key layout: every key the relay reads or writes, spelled here and nowhere else, in a
form that works unchanged on Redis Cluster.

Every Lua step touches one stream and that stream's companion keys (dedupe set, trim marks,
replay marks), so they must hash to the same slot. Redis hashes only the first non-empty
``{...}`` of a key when there is one, else the whole key; a companion key therefore carries
the stream's own hash tag.

Streams (``<prefix>`` is ``RELAY_STREAM_PREFIX``; routes files may name any stream):
    ``<prefix>:events``                 the firehose
    ``<prefix>:events:<event>``         one event type (percent-encoded)
    ``<prefix>:unrouted``               events no route matched
    ``<stream>:dlq``                    a stream's dead letters
Beside each stream (its slot):
    ``relay:dedupe:{<tag>}:<stream>``   ids and content marks already written
    ``relay:trim:{<tag>}:<stream>``     the trimmer's position marks
    ``relay:replayed:{<tag>}:<stream>`` dead letters replayed onto it
    ``relay:replays:{<tag>}:<stream>``  each replay's new entry id
    ``relay:trail:{<tag>}:<stream>``    what each append recorded for the event trail
    ``relay:extractions:{<tag>}:<stream>`` the events of each extraction id
    ``relay:paused:{<tag>}:<stream>``   the groups an operator paused
    ``relay:job-lock:{<tag>}:<stream>`` the replay or purge job running on it
Shared by the relays of one installation (``<prefix>`` is ``RELAY_REGISTRATION_PREFIX``):
    ``<prefix>:registration:{<url>}``   the webhook registration record (and ``…:lock``)
    ``<prefix>:reconcile``              reconciliation state (and ``…:lock``, ``…:last_sweep``)
    ``relay:replication-fence``         the fence before ``WAIT`` (one per slot on a cluster)
    ``relay:job:{<id>}``                one replay or purge job (operator API)
"""

from __future__ import annotations

from urllib.parse import quote

DEDUPE_PREFIX = "relay:dedupe:"
FENCE_KEY = "relay:replication-fence"


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


# Streams


def events_stream(prefix: str) -> str:
    """The firehose: every event, when no routes file is given."""
    return f"{prefix}:events"


def event_stream(prefix: str, event: str) -> str:
    """One event type's stream. Event names come from the sender: anything that is not
    plainly safe in a key is percent-encoded (braces above all, which would move the stream
    to another slot)."""
    return f"{prefix}:events:{quote(event, safe='._-:')}"


def unrouted_stream(prefix: str) -> str:
    """Where events that no route matched go."""
    return f"{prefix}:unrouted"


def dlq_stream(stream: str) -> str:
    """The dead-letter stream of ``stream``."""
    return f"{stream}:dlq"


# Beside each stream


def dedupe_key(stream: str) -> str:
    """The sorted set of event ids already written to ``stream`` (same slot as the stream).

    ``relay:dedupe:{<tag>}:<stream>``: the tag holds no ``}``, so the stream name after it
    is recovered unambiguously and two streams never share a set.
    """
    return f"{DEDUPE_PREFIX}{{{hash_tag(stream)}}}:{stream}"


def trim_marks_key(stream: str) -> str:
    """Where the trimmer remembers positions in ``stream`` (same slot; see trim.lua)."""
    return f"relay:trim:{{{hash_tag(stream)}}}:{stream}"


def replay_marks_key(stream: str) -> str:
    """The dead letters replayed onto ``stream`` (same hash slot as the stream)."""
    return f"relay:replayed:{{{hash_tag(stream)}}}:{stream}"


def replays_key(stream: str) -> str:
    """Each replay's new entry id, by replay mark (same hash slot as the stream)."""
    return f"relay:replays:{{{hash_tag(stream)}}}:{stream}"


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


def job_lock_key(stream: str) -> str:
    """The id of the replay or purge job running on ``stream`` (expiring; one at a time)."""
    return f"relay:job-lock:{{{hash_tag(stream)}}}:{stream}"


# Shared by the relays of one installation


def registration_key(prefix: str, public_url: str) -> str:
    """The registration record for one public URL (JSON; see ``relay.registration.record``)."""
    return f"{prefix}:registration:{{{public_url}}}"


def registration_lock_key(prefix: str, public_url: str) -> str:
    """The lock replicas take to create or change that registration (same slot)."""
    return f"{registration_key(prefix, public_url)}:lock"


def reconcile_state_key(prefix: str) -> str:
    """The hash of reconciliation state (see ``relay.reconcile.state``)."""
    return f"{prefix}:reconcile"


def reconcile_last_sweep_key(prefix: str) -> str:
    """The last sweep's report, whatever its outcome (see ``relay.reconcile.state``)."""
    return f"{prefix}:reconcile:last_sweep"


def reconcile_lock_key(prefix: str) -> str:
    """The lock of the relay sweeping now."""
    return f"{prefix}:reconcile:lock"


def job_key(job_id: str) -> str:
    """One replay or purge job (hash; see ``relay.operator.jobs``)."""
    return f"relay:job:{{{job_id}}}"


def fence_key(stream: str | None = None) -> str:
    """The replication fence of a single Redis, or of ``stream``'s slot on a Cluster."""
    return FENCE_KEY if stream is None else f"{FENCE_KEY}:{{{hash_tag(stream)}}}"
