"""The public listener's dispatch: one path, one method, refusals with no router between.

aiohttp's low-level server: the public listener pays for no router, match info or
middleware chain on each delivery. Its connections carry the deadlines and the cap of
``relay.ingest.connections``.
"""

from __future__ import annotations

from aiohttp import HttpVersion10, HttpVersion11, web

from relay.ingest.connections import SERVER_HEADER, ConnectionLimits, PublicServer
from relay.receiver.parts import Relay

MAX_HEADERS = 64
HTTP_VERSIONS = (HttpVersion11, HttpVersion10)


def build_public_server(relay: Relay) -> PublicServer:
    """The dispatch in front of the ingest handler, served with the settings' limits."""
    handler = relay.ingest
    path = relay.settings.path
    not_found = {"status": "not_found"}
    not_allowed = {"status": "method_not_allowed"}

    async def dispatch(request: web.BaseRequest) -> web.StreamResponse:
        if request.version not in HTTP_VERSIONS:  # aiohttp's Python parser takes any
            response = web.json_response(
                {"status": "rejected", "reason": "http_version"},
                status=400,
                headers={"Server": SERVER_HEADER},
            )
            response.force_close()
            return response
        if request.path != path:
            return web.json_response(not_found, status=404, headers={"Server": SERVER_HEADER})
        if request.method != "POST":
            headers = {"Allow": "POST", "Server": SERVER_HEADER}
            return web.json_response(not_allowed, status=405, headers=headers)
        return await handler.handle(request)

    settings = relay.settings
    limits = ConnectionLimits(
        client_timeout=settings.client_timeout,
        keepalive_timeout=settings.keepalive_timeout,
        max_connections=settings.max_connections,
    )
    # lingering_time=0: a refused body (413) is never read to its end. max_headers: a
    # signed delivery carries about a dozen; a hundred and more only cost memory.
    relay.public = PublicServer(
        dispatch,
        limits=limits,
        metrics=relay.metrics,
        budget=relay.body_budget,
        access_log=None,
        lingering_time=0,
        max_headers=MAX_HEADERS,
    )
    return relay.public
