"""What a handler can say besides "done" (return) and "failed, retry" (raise anything)."""

from __future__ import annotations


class Reject(Exception):
    """Raise to send the entry to the dead-letter stream now, without further attempts:
    the entry can never succeed (bad data, a deleted customer), retrying only delays it.

    ``reason`` becomes the dead letter's ``error`` field.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Retry(Exception):
    """Raise to fail this attempt and choose the wait before the next one (a downstream's
    ``Retry-After``, a rate limit's reset). It still counts as an attempt: after the last
    one the entry goes to the dead-letter stream like any failure.

    ``after``: seconds to wait; ``None`` means the worker's usual backoff.
    """

    def __init__(self, after: float | None = None, reason: str = "") -> None:
        if after is not None and after < 0:
            raise ValueError("Retry(after=...) must not be negative")
        super().__init__(reason or (f"retry in {after}s" if after is not None else "retry"))
        self.after = after
        self.reason = reason
