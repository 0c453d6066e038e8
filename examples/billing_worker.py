"""A complete worker: each completed extraction is reported to a billing API.

    BILLING_API_URL=https://billing.example/usage \\
    relay worker --stream anyformat:events:extraction.completed --group billing \\
        --handler examples.billing_worker:handle --lifespan examples.billing_worker:lifespan

Without ``BILLING_API_URL`` (as ``relay dev`` runs it) it only logs what it would bill.

It shows every control a handler has: return (done), raise (retry with backoff),
``Retry(after=…)`` (the API said when), ``Reject(reason)`` (never going to work: straight to
the dead-letter stream), and a lifespan that opens one HTTP session per process.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import aiohttp
import structlog

from relay import Event, Reject, Retry

log = structlog.get_logger("billing")
BILLING_API_URL = os.environ.get("BILLING_API_URL", "")


@contextlib.asynccontextmanager
async def lifespan() -> AsyncIterator[dict[str, aiohttp.ClientSession]]:
    """Once per worker process: the session (its connection pool) every handler shares.
    It is closed after the last handler has finished."""
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield {"http": session}


BILLABLE = frozenset({"extraction.completed"})


async def handle(event: Event) -> None:
    if event.event not in BILLABLE:
        # `relay dev` points this worker at anyformat:events, which carries every event:
        # a failed extraction is acknowledged and never billed.
        log.info("not_billed", webhook_event=event.event, id=event.id)
        return
    data = event.payload["data"]
    extraction_id = data.get("extraction_id")
    if not extraction_id:
        raise Reject("no data.extraction_id: nothing to bill")
    usage = {"extraction_id": extraction_id, "status": data.get("status"), "event": event.event}
    if not BILLING_API_URL:
        log.info("would_bill", usage=usage, attempt=event.attempt)
        return
    http: aiohttp.ClientSession = event.state["http"]  # from the lifespan
    # Deliveries are at-least-once: the API deduplicates on the webhook id.
    headers = {"Idempotency-Key": event.id}
    async with http.post(BILLING_API_URL, json=usage, headers=headers) as response:
        if response.status < 300 or response.status == 409:  # 409: billed before
            log.info("billed", extraction_id=extraction_id, attempt=event.attempt)
            return
        retry_after = response.headers.get("Retry-After", "")
        if response.status in (429, 503) and retry_after.isdigit():
            raise Retry(after=int(retry_after), reason=f"billing API busy ({response.status})")
        if 400 <= response.status < 500 and response.status not in (408, 429):
            detail = (await response.text())[:200]
            raise Reject(f"billing API refused {extraction_id}: {response.status} {detail}")
        response.raise_for_status()  # 5xx and the like: retried with backoff
