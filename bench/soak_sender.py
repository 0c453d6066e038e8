"""The soak's sender: AnyFormat as the relay sees it.

Sequence-numbered, Standard-Webhooks-signed deliveries at a steady rate, spread over the
relay replicas like a load balancer would; on a ``503``, a timeout or a dropped connection
the same id is sent again with a fresh timestamp (and signature), to the next replica,
until it is answered ``200`` or the sender gives up at the end of the run.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

RETRY_STATUSES = {503}  # anything else but 200 is a refusal: the run fails on it


@dataclass
class SenderLog:
    sent: int = 0
    attempts: int = 0
    accepted: dict[str, float] = field(default_factory=dict)  # id -> when answered 200
    latency_ms: list[tuple[float, float]] = field(default_factory=list)  # (t, 200 latency)
    answers: Counter[str] = field(default_factory=Counter)  # non-200 outcomes
    refused: list[str] = field(default_factory=list)  # ids answered a status not retried
    behind: int = 0  # times the sender could not keep the rate (all slots busy)


def delivery(key: bytes, message_id: str, sequence: int, run: str) -> tuple[bytes, dict[str, str]]:
    """A body shaped like AnyFormat's, and its headers signed now."""
    body = json.dumps(
        {
            "event": "extraction.completed",
            "timestamp": "2024-03-24T12:02:30.000Z",
            "data": {
                "extraction_id": f"soak-{run}-{sequence}",
                "status": "processed",
                "workflow_id": "550e8400-e29b-41d4-a716-446655440000",
                "processed_at": "2024-03-24T12:02:30.000Z",
                "file_name": f"invoice-{sequence:09d}.pdf",
                "pages": 3,
            },
        },
        separators=(",", ":"),
    ).encode()
    return body, sign(key, message_id, body)


def sign(key: bytes, message_id: str, body: bytes) -> dict[str, str]:
    now = str(int(time.time()))
    mac = hmac.new(key, f"{message_id}.{now}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": now,
        "webhook-signature": f"v1,{base64.b64encode(mac).decode()}",
        "content-type": "application/json",
    }


class Sender:
    """``run()`` sends ``rate`` deliveries a second until ``stop`` is set, then finishes the
    re-sends in progress (for at most ``drain_seconds``)."""

    def __init__(self, urls: list[str], key: bytes, rate: float, run: str, t0: float) -> None:
        self.urls, self.key, self.rate, self.run_id, self.t0 = urls, key, rate, run, t0
        self.log = SenderLog()
        self.stop = asyncio.Event()
        self._slots = asyncio.Semaphore(512)
        self.giving_up = math.inf  # set when stopped: re-sends end then

    async def run(self, drain_seconds: float = 90) -> SenderLog:
        timeout = aiohttp.ClientTimeout(total=10)
        # A steady pool, like a provider's: the relays' open files follow it, not the load.
        connector = aiohttp.TCPConnector(limit_per_host=16)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            tasks: set[asyncio.Task[None]] = set()
            start = time.monotonic()
            sequence = 0
            while not self.stop.is_set():
                if self._slots.locked():
                    self.log.behind += 1
                await self._slots.acquire()
                task = asyncio.create_task(self._deliver(http, sequence))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sequence += 1
                pause = start + sequence / self.rate - time.monotonic()
                if pause > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stop.wait(), pause)
            self.giving_up = time.monotonic() + drain_seconds
            if tasks:
                await asyncio.wait(tasks, timeout=drain_seconds + 15)
            for task in tasks:
                task.cancel()
        return self.log

    async def _deliver(self, http: aiohttp.ClientSession, sequence: int) -> None:
        message_id = f"msg_soak_{self.run_id}_{sequence:09d}"
        body, _ = delivery(self.key, message_id, sequence, self.run_id)
        self.log.sent += 1
        replica, pause = sequence % len(self.urls), 0.2
        try:
            while True:
                self.log.attempts += 1
                began = time.monotonic()
                try:
                    headers = sign(self.key, message_id, body)
                    async with http.post(self.urls[replica], data=body, headers=headers) as r:
                        await r.read()
                        status = r.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status, outcome = 0, type(exc).__name__
                else:
                    outcome = str(status)
                if status == 200:
                    now = time.monotonic()
                    self.log.accepted[message_id] = now - self.t0
                    self.log.latency_ms.append((now - self.t0, (now - began) * 1000))
                    return
                self.log.answers[outcome] += 1
                if status and status not in RETRY_STATUSES:
                    self.log.refused.append(message_id)
                    return
                if time.monotonic() > self.giving_up:
                    return
                replica = (replica + 1) % len(self.urls)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
        finally:
            self._slots.release()
