"""Dedupe marks: what makes two deliveries the same event to a stream.

Each stream remembers two marks per entry for ``RELAY_DEDUPE_TTL``: the message id, and the
**content mark** of the event, ``(event, data.extraction_id, data.status)``. The content mark
is what catches the same event under another id: during a secret rotation AnyFormat sends
each event to both subscriptions under different message ids, and reconciliation writes
events recovered from the API under ids of its own. A body without an ``extraction_id`` has
no content mark (nothing identifies its event but its id).
"""

from __future__ import annotations

import hashlib

CONTENT_PREFIX = "content:"


def content_mark(event: str, extraction_id: str, status: str) -> str | None:
    """The content mark of an event, or ``None`` without an extraction id.

    A 128-bit digest: fixed size whatever the sender put in the fields (memory per entry),
    and no message id can look like it (ids are not ``content:``-prefixed hex).
    """
    if not extraction_id:
        return None
    digest = hashlib.blake2b(
        "\x00".join((event, extraction_id, status)).encode(), digest_size=16
    ).hexdigest()
    return CONTENT_PREFIX + digest


def dedupe_marks(message_id: str, content: str | None) -> tuple[str, ...]:
    """The marks an entry is written under, message id first."""
    return (message_id, content) if content else (message_id,)
