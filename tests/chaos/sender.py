"""A sender that behaves like a webhook provider: steady rate, re-sends until 2xx."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from tests.support.signing import event_body, sign


@dataclass
class SendReport:
    deliveries: int = 0
    attempts: int = 0
    acknowledged: set[str] = field(default_factory=set)
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def resends(self) -> int:
        return self.attempts - self.deliveries

    def summary(self) -> str:
        return (
            f"deliveries={self.deliveries} attempts={self.attempts} resends={self.resends} "
            f"2xx={len(self.acknowledged)} failures={dict(self.failures)}"
        )


async def send_all(
    url: str, count: int, *, rate: float, deadline_s: float, concurrency: int = 32
) -> SendReport:
    """Deliver ``count`` events (ids ``msg_0…``), each re-sent (re-signed, same id, like a
    provider's retry) after any connection error, timeout or non-2xx, until acknowledged."""
    report = SendReport(deliveries=count)
    deadline = time.monotonic() + deadline_s
    slots = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=5)

    async def deliver(http: aiohttp.ClientSession, n: int) -> None:
        msg_id = f"msg_{n}"
        body = event_body(extraction_id=f"ex-{n}")
        async with slots:
            while time.monotonic() < deadline:
                report.attempts += 1
                try:
                    async with http.post(url, data=body, headers=sign(body, msg_id=msg_id)) as r:
                        await r.read()
                        if 200 <= r.status < 300:
                            report.acknowledged.add(msg_id)
                            return
                        report.failures[str(r.status)] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    report.failures[type(exc).__name__] += 1
                await asyncio.sleep(0.05)

    connector = aiohttp.TCPConnector(limit=concurrency, force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        tasks = []
        for n in range(count):
            tasks.append(asyncio.create_task(deliver(http, n)))
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*tasks)
    return report
