"""The operator's questions and actions, as (status, JSON document) pairs: what the API
answers and what the console renders, from the very same calls.

Bound once per relay to its Redis and its streams (every stream the routes can write, and
only those: the API never touches another key). Each action that changes state logs one
``audit`` line: action, stream, group, count, the client's address. Replay and purge jobs
run in this process, in tasks it keeps; at shutdown they are cancelled, which marks them
failed and frees their stream (a resubmit does the rest).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from relay.operator.deadletters import Filter, Selection, SelectionError, dry_run
from relay.operator.deadletters import list_dead_letters as list_letters
from relay.operator.jobs import ACTIONS, Action, Job, JobRunning, cancel, job_status, submit
from relay.operator.trail import event_trail, extraction_events
from relay.redis.client import Redis
from relay.worker.pause import is_paused, set_paused

Answer = tuple[int, dict[str, Any]]
LISTING_QUERY = ("event", "group", "error", "since", "until")

log = structlog.get_logger("relay.operator")


def _refused(status: int, code: str, **details: Any) -> Answer:
    return status, {"error": code, **details}


class Operations:
    def __init__(self, redis: Redis, streams: Callable[[], Sequence[str]]) -> None:
        self.redis = redis
        self._streams = streams
        self.jobs: set[asyncio.Task[str]] = set()

    def known(self, stream: str) -> bool:
        return stream in self._streams()

    # --- questions ---------------------------------------------------------------------

    async def event(self, event_id: str) -> Answer:
        trail = await event_trail(self.redis, self._streams(), event_id)
        if trail is None:
            return _refused(404, "not_found", id=event_id)
        return 200, trail

    async def events_of_extraction(self, extraction_id: str) -> Answer:
        if not extraction_id:
            return _refused(400, "bad_request", detail="extraction_id is required")
        return 200, await extraction_events(self.redis, self._streams(), extraction_id)

    async def dead_letters(self, stream: str, query: Mapping[str, str]) -> Answer:
        if not self.known(stream):
            return _refused(404, "unknown_stream", stream=stream)
        try:
            flt = Filter.parse({key: query.get(key) for key in LISTING_QUERY})
            limit = int(query.get("limit") or 50)
            page = await list_letters(
                self.redis, stream, flt, limit=limit, after=query.get("after") or None
            )
        except (SelectionError, ValueError) as exc:
            return _refused(400, "bad_request", detail=str(exc))
        return 200, page

    async def job(self, job_id: str) -> Answer:
        status = await job_status(self.redis, job_id)
        return (200, status) if status is not None else _refused(404, "not_found", job=job_id)

    async def paused(self, stream: str, group: str) -> bool:
        return await is_paused(self.redis, stream, group)

    # --- actions -----------------------------------------------------------------------

    async def act_on_dead_letters(
        self, stream: str, action: str, document: Any, remote: str
    ) -> Answer:
        """Replay or purge: the dry run's count, or ``202`` with the job started."""
        if not self.known(stream):
            return _refused(404, "unknown_stream", stream=stream)
        if action not in ACTIONS:
            return _refused(404, "not_found")
        if not isinstance(document, dict):
            return _refused(400, "bad_request", detail="a JSON object is expected")
        try:
            selection = Selection.parse({k: v for k, v in document.items() if k != "dry_run"})
        except SelectionError as exc:
            return _refused(400, "bad_request", detail=str(exc))
        if document.get("dry_run") is True:
            return 200, await dry_run(self.redis, stream, selection)
        try:
            job = await submit(self.redis, stream, _action(action), selection)
        except JobRunning as exc:
            return _refused(409, "job_running", job=exc.job)
        group = selection.filter.group if selection.filter else None
        audit(action, remote, stream=stream, group=group, count=job.total, job=job.id)
        self._start(job)
        return 202, {"job": job.id}

    async def cancel_job(self, job_id: str, remote: str) -> Answer:
        status = await cancel(self.redis, job_id)
        if status is None:
            return _refused(404, "not_found", job=job_id)
        audit("cancel", remote, stream=status["stream"], group=None, count=None, job=job_id)
        return 200, status

    async def pause_group(self, stream: str, group: str, paused: bool, remote: str) -> Answer:
        if not self.known(stream):
            return _refused(404, "unknown_stream", stream=stream)
        changed = await set_paused(self.redis, stream, group, paused)
        audit("pause" if paused else "resume", remote, stream=stream, group=group,
              count=1 if changed else 0)  # fmt: skip
        return 200, {"stream": stream, "group": group, "paused": paused, "changed": changed}

    def _start(self, job: Job) -> None:
        task = asyncio.create_task(job.run(), name=f"job-{job.id}")
        self.jobs.add(task)
        task.add_done_callback(self._finished(job))

    def _finished(self, job: Job) -> Callable[[asyncio.Task[str]], None]:
        def done(task: asyncio.Task[str]) -> None:
            self.jobs.discard(task)
            state = "failed" if task.cancelled() or task.exception() else task.result()
            log.info("job_finished", job=job.id, action=job.action, stream=job.stream,
                     state=state, total=job.total, **job.counts)  # fmt: skip

        return done

    async def close(self) -> None:
        """Cancel the jobs still running (each records that it was cut off)."""
        for task in list(self.jobs):
            task.cancel()
        await asyncio.gather(*self.jobs, return_exceptions=True)


def _action(name: str) -> Action:
    return "replay" if name == "replay" else "purge"


def audit(action: str, remote: str, **details: Any) -> None:
    """The one line per state-changing action (never a secret: ids and names only)."""
    log.info("audit", action=action, remote=remote, **details)
