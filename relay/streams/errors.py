"""What can go wrong writing to the streams, in the streams' terms: the ingest path and the
reconciler answer these, never a Redis client's exceptions."""

from __future__ import annotations


class StreamsError(Exception):
    """A write to the streams did not complete; ``error`` names why, for logs and metrics
    (a class name: never a URL or a password). A re-send completes it, once."""

    error: str


class StreamsUnavailable(StreamsError):
    """Redis could not take the write: unreachable, timed out, or it refused the command
    (``error`` is the Redis client's exception name). Nothing, or only part, is written."""

    def __init__(self, error: str) -> None:
        super().__init__(f"the streams are unavailable ({error})")
        self.error = error


class ReplicationTimeout(StreamsError):
    """Written (or found written) on the master, but fewer replicas than asked confirmed it
    in time (``RELAY_REDIS_WAIT_REPLICAS``): answered 503 ``replication_timeout``, and the
    sender's re-send dedupes and waits again."""

    error = "ReplicationTimeout"

    def __init__(self, acknowledged: int, wanted: int) -> None:
        super().__init__(f"{acknowledged} of {wanted} replicas confirmed the write in time")
        self.acknowledged = acknowledged
        self.wanted = wanted
