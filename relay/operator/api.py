"""The operator API's routes for events, dead letters, jobs and pauses (JSON, behind
:mod:`relay.operator.security`): HTTP in, :class:`~relay.operator.operations.Operations`
out. Redis being away is ``503 {"error": "redis_unavailable"}``, as on the delivery path.

Stream names are path segments: percent-encode what a URL cannot hold (``{`` ``}`` ``:``
may be sent as they are); a stream the routes cannot write is ``404``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from relay.operator.operations import Answer, Operations
from relay.operator.security import client_address, error
from relay.redis.client import REDIS_DOWN

STREAM = "{stream:[^/]+}"
Call = Callable[[web.Request], Awaitable[Answer]]


def _json(call: Call) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            status, document = await call(request)
        except REDIS_DOWN:
            return error(503, "redis_unavailable")
        return web.json_response(document, status=status, dumps=_dumps)

    return handle


def _dumps(document: Any) -> str:
    return orjson.dumps(document).decode()


async def _body(request: web.Request) -> Any:
    """The JSON body, or ``None`` when there is none or it is not JSON."""
    raw = await request.read()
    try:
        return orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        return None


def operator_routes(operations: Operations) -> Callable[[web.Application], None]:
    """What adds the routes to the admin app (the guard is installed by ``admin_app``); the
    app's cleanup stops the jobs this process runs."""

    async def event(request: web.Request) -> Answer:
        return await operations.event(request.match_info["id"])

    async def events(request: web.Request) -> Answer:
        return await operations.events_of_extraction(request.query.get("extraction_id", ""))

    async def dead_letters(request: web.Request) -> Answer:
        return await operations.dead_letters(request.match_info["stream"], request.query)

    async def act(request: web.Request) -> Answer:
        document = await _body(request)
        if document is None:
            return 400, {"error": "bad_request", "detail": "the body is not JSON"}
        return await operations.act_on_dead_letters(
            request.match_info["stream"], request.match_info["action"], document,
            client_address(request),
        )  # fmt: skip

    async def job(request: web.Request) -> Answer:
        return await operations.job(request.match_info["job"])

    async def cancel(request: web.Request) -> Answer:
        return await operations.cancel_job(request.match_info["job"], client_address(request))

    def pausing(paused: bool) -> Call:
        async def handle(request: web.Request) -> Answer:
            stream, group = request.match_info["stream"], request.match_info["group"]
            return await operations.pause_group(stream, group, paused, client_address(request))

        return handle

    async def stop_jobs(app: web.Application) -> None:
        await operations.close()

    def add(app: web.Application) -> None:
        routes = app.router
        routes.add_get("/api/events/{id}", _json(event))
        routes.add_get("/api/events", _json(events))
        routes.add_get(f"/api/streams/{STREAM}/dead-letters", _json(dead_letters))
        routes.add_post(f"/api/streams/{STREAM}/dead-letters/{{action:replay|purge}}", _json(act))
        routes.add_get("/api/jobs/{job}", _json(job))
        routes.add_post("/api/jobs/{job}/cancel", _json(cancel))
        routes.add_post(f"/api/streams/{STREAM}/groups/{{group}}/pause", _json(pausing(True)))
        routes.add_post(f"/api/streams/{STREAM}/groups/{{group}}/resume", _json(pausing(False)))
        app.on_cleanup.append(stop_jobs)

    return add
