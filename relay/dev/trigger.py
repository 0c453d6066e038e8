"""`relay trigger`: send a correctly signed sample delivery, as AnyFormat would."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from datetime import UTC, datetime

import aiohttp
import orjson

from relay.settings import decode_standard_secret


def sample_body(event: str, workflow_id: str | None) -> bytes:
    """A body shaped like AnyFormat's deliveries for ``event``."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    failed = event == "extraction.failed"
    return orjson.dumps(
        {
            "event": event,
            "timestamp": now,
            "data": {
                "extraction_id": str(uuid.uuid4()),
                "status": "error" if failed else "processed",
                "workflow_id": workflow_id or str(uuid.uuid4()),
                "processed_at": None if failed else now,
            },
        }
    )


def signed_headers(body: bytes, secret: str, scheme: str, hmac_header: str) -> dict[str, str]:
    if scheme == "hmac-sha256":
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return {hmac_header: f"sha256={digest}"}
    message_id = f"msg_{uuid.uuid4().hex}"
    timestamp = str(int(time.time()))
    mac = hmac.new(decode_standard_secret(secret), f"{message_id}.{timestamp}.".encode(), "sha256")
    mac.update(body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": "v1," + base64.b64encode(mac.digest()).decode(),
    }


async def send(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    timeout = aiohttp.ClientTimeout(total=15)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.post(url, data=body, headers={**headers, "Content-Type": "application/json"}) as r,
    ):
        return r.status, await r.text()
