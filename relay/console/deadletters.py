"""The console's dead-letter page of one stream, the replay or purge of a selection, the
job's page, and pause/resume of a group.

Every answer comes from the API's own calls (:class:`relay.operator.operations.Operations`:
the same audit lines, the same one-job-per-stream rule). The flow keeps an operator from
acting blind: filter and select on the list (entries ticked, or "all matching"), then a
confirmation page with the dry run's count and sample, then the job's page with its
progress (refreshed) and a cancel button. The confirmation carries the selection itself,
so what runs is what was counted. Forms are answered with redirects (post/redirect/get).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from relay.console.pages import DEAD_LETTERS_PAGE, PAUSE_FORMS, page
from relay.operator.operations import LISTING_QUERY, Operations
from relay.operator.security import client_address
from relay.redis.client import REDIS_DOWN

ACTIONS = ("replay", "purge")


def _filters(values: Mapping[str, Any]) -> dict[str, str]:
    return {name: str(values.get(name, "")).strip() for name in LISTING_QUERY}


def _selection(form: Mapping[str, Any], ids: list[str]) -> dict[str, Any]:
    """The API's selection document: the ticked ids, or the filter ("all matching")."""
    if form.get("scope") == "all":
        return {"filter": _filters(form)}
    return {"ids": ids}


def _action(form: Mapping[str, Any]) -> str:
    action = str(form.get("action", ""))
    if action not in ACTIONS:
        raise web.HTTPBadRequest(text="action: replay or purge", content_type="text/plain")
    return action


def deadletter_routes(operations: Operations) -> Callable[[web.Application], None]:
    """What adds the dead-letter, job and pause pages to the admin app."""

    def listing(
        request: web.Request,
        stream: str,
        *,
        status: int = 200,
        problem: str | None = None,
        letters: list[Any] | None = None,
        next_url: str | None = None,
    ) -> web.Response:
        return page(
            "deadletters.html",
            request,
            status=status,
            stream=stream,
            filters=_filters(request.query),
            letters=letters or [],
            next_url=next_url,
            problem=problem,
        )

    async def show(request: web.Request) -> web.Response:
        stream = request.match_info["stream"]
        try:
            status, answer = await operations.dead_letters(stream, request.query)
        except REDIS_DOWN:
            return listing(request, stream, status=503, problem="Redis is not answering.")
        if status == 404:
            raise web.HTTPNotFound(text="no such stream", content_type="text/plain")
        if status != 200:
            return listing(request, stream, status=status, problem=answer.get("detail"))
        next_url = None
        if answer["next"]:
            next_url = str(request.rel_url.update_query(after=answer["next"]))
        return listing(request, stream, letters=answer["dead_letters"], next_url=next_url)

    async def confirm(request: web.Request) -> web.Response:
        """The dry run of what the form selected: its count, before anything is done."""
        stream = request.match_info["stream"]
        form = await request.post()
        action = _action(form)
        ids = [str(value) for value in form.getall("ids", [])]
        if form.get("scope") != "all" and not ids:
            problem = "Tick at least one dead letter, or choose all matching."
            return listing(request, stream, status=400, problem=problem)
        selection = _selection(form, ids)
        status, answer = await operations.act_on_dead_letters(
            stream, action, {**selection, "dry_run": True}, client_address(request)
        )
        if status == 404:
            raise web.HTTPNotFound(text="no such stream", content_type="text/plain")
        if status != 200:
            return listing(request, stream, status=status, problem=answer.get("detail"))
        return page(
            "confirm.html",
            request,
            stream=stream,
            action=action,
            scope="all" if "filter" in selection else "ids",
            ids=ids,
            filters=_filters(form),
            matched=answer["matched"],
            sample=answer["sample"],
        )

    async def act(request: web.Request) -> web.StreamResponse:
        """Start the confirmed job and show its page."""
        stream = request.match_info["stream"]
        form = await request.post()
        action = _action(form)
        ids = [str(value) for value in form.getall("ids", [])]
        status, answer = await operations.act_on_dead_letters(
            stream, action, _selection(form, ids), client_address(request)
        )
        if status == 202:
            raise web.HTTPSeeOther(f"/console/jobs/{answer['job']}")
        if status == 409:  # one job per stream: show the one running
            raise web.HTTPSeeOther(f"/console/jobs/{answer['job']}?busy=1")
        if status == 404:
            raise web.HTTPNotFound(text="no such stream", content_type="text/plain")
        return listing(request, stream, status=status, problem=answer.get("detail"))

    async def show_job(request: web.Request) -> web.Response:
        status, job = await operations.job(request.match_info["job"])
        if status != 200:
            raise web.HTTPNotFound(text="no such job", content_type="text/plain")
        return page("job.html", request, job=job, busy="busy" in request.query,
                    refresh=1 if job["state"] == "running" else 0)  # fmt: skip

    async def cancel_job(request: web.Request) -> web.StreamResponse:
        job_id = request.match_info["job"]
        status, _ = await operations.cancel_job(job_id, client_address(request))
        if status != 200:
            raise web.HTTPNotFound(text="no such job", content_type="text/plain")
        raise web.HTTPSeeOther(f"/console/jobs/{job_id}")

    def pausing(paused: bool) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            stream, group = request.match_info["stream"], request.match_info["group"]
            status, _ = await operations.pause_group(stream, group, paused, client_address(request))
            if status != 200:
                raise web.HTTPNotFound(text="no such stream", content_type="text/plain")
            raise web.HTTPSeeOther("/console/")

        return handle

    def add(app: web.Application) -> None:
        base = "/console/streams/{stream}/dead-letters"
        app.router.add_get(base, show, name=DEAD_LETTERS_PAGE)
        app.router.add_post(base + "/confirm", confirm)
        app.router.add_post(base + "/act", act)
        app.router.add_get("/console/jobs/{job}", show_job)
        app.router.add_post("/console/jobs/{job}/cancel", cancel_job)
        app.router.add_post(
            "/console/streams/{stream}/groups/{group}/pause", pausing(True), name=PAUSE_FORMS
        )
        app.router.add_post("/console/streams/{stream}/groups/{group}/resume", pausing(False))

    return add
