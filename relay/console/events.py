"""The console's event page: one search box for an event id or an extraction id; the
event's trail (the API's own answer, :class:`relay.operator.operations.Operations`) as a
timeline, and its payload as the sender sent it, shown as text."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from yarl import URL

from relay.console.pages import EVENTS_PAGE, page
from relay.operator.operations import Operations
from relay.redis.client import REDIS_DOWN, Redis

MAX_QUERY = 200  # longer than any event or extraction id


def readable(payload: str) -> str:
    """JSON indented for reading (key order kept); anything else as it is."""
    try:
        return json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    except ValueError:
        return payload


async def payload_of(redis: Redis, trail: dict[str, Any]) -> str | None:
    """The payload field of the first stream entry still present (``None`` once trimmed)."""
    for stream in trail["streams"]:
        entries = await redis.xrange(stream["stream"], stream["entry_id"], stream["entry_id"])
        if entries:
            fields = entries[0][1] or {}
            raw = fields.get(b"payload")
            if raw is None:
                return None
            return readable(raw.decode(errors="replace") if isinstance(raw, bytes) else raw)
    return None


def event_routes(operations: Operations) -> Callable[[web.Application], None]:
    """What adds ``GET /console/events?q=`` to the admin app."""

    async def show(request: web.Request) -> web.Response:
        query = request.query.get("q", "").strip()[:MAX_QUERY]
        context: dict[str, Any] = {"query": query, "trail": None, "events": None,
                                   "payload": None, "redis_down": False}  # fmt: skip
        try:
            if query:
                status, trail = await operations.event(query)
                if status == 200:
                    context.update(trail=trail, payload=await payload_of(operations.redis, trail))
                else:
                    _, found = await operations.events_of_extraction(query)
                    events = found["events"]
                    if len(events) == 1:  # one event: its trail at once
                        only = URL("/console/events").with_query(q=events[0]["id"])
                        raise web.HTTPSeeOther(str(only))
                    context["events"] = events
        except REDIS_DOWN:
            return page("events.html", request, status=503, **{**context, "redis_down": True})
        found_something = not query or context["trail"] or context["events"]
        return page("events.html", request, status=200 if found_something else 404, **context)

    def add(app: web.Application) -> None:
        app.router.add_get("/console/events", show, name=EVENTS_PAGE)

    return add
