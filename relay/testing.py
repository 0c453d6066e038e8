"""Test a handler without Redis: build an :class:`~relay.Event`, run the handler as the
worker runtime would, and read what the runtime would do next.

```python
from relay.testing import make_event, run_handler

async def test_a_failed_extraction_is_not_billed() -> None:
    result = await run_handler(handle, make_event("extraction.failed"))
    assert result.outcome == "handled"
```

The outcome is read by the same code the runtime uses (``relay.worker.handling``), and
the wait by the same :class:`~relay.RetryPolicy`; only Redis is left out.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from relay.dev.trigger import sample_body
from relay.worker.event import Event, parse_entry
from relay.worker.handling import call_handler
from relay.worker.retry import RetryPolicy
from relay.worker.runtime import Handler

__all__ = ["HandlerResult", "make_event", "run_handler"]

EVENTS = ("extraction.completed", "extraction.failed")
Kind = Literal["handled", "retry", "reject", "timeout"]


def make_event(
    payload: Mapping[str, Any] | str = "extraction.completed",
    *,
    attempt: int = 1,
    stream: str = "anyformat:events",
    state: Mapping[str, Any] | None = None,
    **fields: str | int,
) -> Event:
    """An :class:`~relay.Event` as the runtime would parse it from a stream entry.

    Args:
        payload: the webhook body, or an event name for a sample body shaped like
            AnyFormat's (``extraction.completed`` / ``extraction.failed``).
        attempt: the delivery count (1: first attempt).
        stream: the stream it was read from.
        state: what a lifespan would have yielded.
        fields: any entry field to set or override (``id``, ``received_at``,
            ``source``, ``traceparent``…); ``extraction_id``, ``workflow_id`` and
            ``event`` default to the payload's.
    """
    if isinstance(payload, str):
        if payload not in EVENTS:
            raise ValueError(f"unknown event {payload!r}: one of {', '.join(EVENTS)}")
        body: dict[str, Any] = orjson.loads(sample_body(payload, None))
    else:
        body = dict(payload)
    data = body.get("data")
    if not isinstance(data, dict):
        data = {}
    entry: dict[str, str] = {
        "id": f"msg_{uuid.uuid4().hex}",
        "event": str(body.get("event", "")),
        "received_at": str(time.time_ns() // 1_000_000),
        "extraction_id": str(data.get("extraction_id") or ""),
        "workflow_id": str(data.get("workflow_id") or ""),
    }
    entry.update({name: str(value) for name, value in fields.items()})
    raw = {name: value.encode() for name, value in entry.items()}
    raw["payload"] = orjson.dumps(body)
    entry_id = f"{int(entry['received_at']) if entry['received_at'].isdigit() else 0}-0"
    return parse_entry(stream, entry_id, raw, attempt, state)


@dataclass(frozen=True, slots=True)
class HandlerResult:
    """What the runtime does after one attempt.

    Attributes:
        outcome: ``handled`` (acknowledged), ``retry`` (the handler raised), ``reject``
            (it raised ``Reject``), ``timeout`` (it ran past ``handler_timeout``).
        error: the text a dead letter would carry as ``error`` ("" when handled).
        dead_letter: the entry moves to the DLQ now (``reject``, or the last attempt
            failed).
        wait: seconds before the next attempt (``None``: no next attempt); the handler's
            ``Retry(after=...)``, else the policy's jittered backoff, between half and
            all of ``min(backoff_max, backoff_base * 2 ** (attempt - 1))``.
    """

    outcome: Kind
    error: str = ""
    dead_letter: bool = False
    wait: float | None = None


async def run_handler(
    handler: Handler,
    event: Event,
    *,
    policy: RetryPolicy | None = None,
    handler_timeout: float | None = None,
) -> HandlerResult:
    """Run ``handler`` once on ``event`` as the worker would and say what follows.

    Args:
        handler: the handler under test.
        event: from :func:`make_event`; its ``attempt`` decides whether a failure is
            the last one.
        policy: the worker's retry policy [the default ``RetryPolicy()``].
        handler_timeout: the worker's ``handler_timeout`` (``None``: no limit).
    """
    policy = policy or RetryPolicy()
    outcome = await call_handler(handler, event, handler_timeout)
    if outcome.handled:
        return HandlerResult("handled")
    if outcome.rejected:
        return HandlerResult("reject", outcome.error, dead_letter=True)
    kind: Kind = "timeout" if outcome.timed_out else "retry"
    if event.attempt >= policy.max_attempts:
        return HandlerResult(kind, outcome.error, dead_letter=True)
    after = outcome.retry_after
    wait = policy.delay(event.attempt) if after is None else after
    return HandlerResult(kind, outcome.error, wait=wait)
