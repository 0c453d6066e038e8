"""Deliveries signed by the reference implementation (the ``standardwebhooks`` package)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook, hmac_data

SECRET = "whsec_" + base64.b64encode(b"relay-test-signing-key-0123456789").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another-signing-key-for-rotation").decode()


def event_body(
    event: str = "extraction.completed",
    *,
    extraction_id: str | None = None,
    workflow_id: str = "550e8400-e29b-41d4-a716-446655440000",
    **extra: Any,
) -> bytes:
    """A body shaped like AnyFormat's deliveries."""
    data: dict[str, Any] = {
        "extraction_id": extraction_id or str(uuid.uuid4()),
        "status": "processed" if event == "extraction.completed" else "error",
        "workflow_id": workflow_id,
        "processed_at": "2024-03-24T12:02:30.000Z",
    }
    return json.dumps(
        {"event": event, "timestamp": "2024-03-24T12:02:30.000Z", "data": data, **extra}
    ).encode()


def sign(
    body: bytes,
    *,
    secret: str = SECRET,
    msg_id: str | None = None,
    timestamp: int | None = None,
    prefix: str = "webhook",
) -> dict[str, str]:
    """Standard Webhooks headers for ``body``, signed by the reference library."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    webhook = Webhook(secret)
    try:
        signature = webhook.sign(msg_id, datetime.fromtimestamp(timestamp, tz=UTC), body.decode())
    except UnicodeDecodeError:
        # The library signs text only; its own HMAC primitive signs raw bytes.
        raw = hmac_data(webhook._whsecret, f"{msg_id}.{timestamp}.".encode() + body)
        signature = "v1," + base64.b64encode(raw).decode()
    return {
        f"{prefix}-id": msg_id,
        f"{prefix}-timestamp": str(timestamp),
        f"{prefix}-signature": signature,
    }
