"""Replay and purge jobs, stored in Redis so that any relay (or the CLI) can report them.

A job is a hash (``relay:job:{<id>}``: action, stream, state, counts) kept for a week, and
the stream's job lock (``relay:job-lock:{<tag>}:<stream>``, the running job's id, expiring
unless its runner refreshes it): one job per stream at a time, a second is refused. A job
whose runner died holds the lock no more, so it is reported ``failed`` (interrupted), and
the stream is free again within ``LOCK_TTL_MS``.

Each dead letter is acted on once however often a selection is submitted: a replay is
idempotent (its replay mark, relay.worker.deadletter) and removes the dead letter, a purge
deletes it; so a job submitted again after an interruption finds only what was left, and
a dead letter already gone counts as ``skipped``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

from relay.operator.deadletters import Selection, dry_run, matching
from relay.redis.client import Redis
from relay.redis.errors import ResponseError
from relay.redis.keys import dlq_stream, job_key, job_lock_key
from relay.redis.scripts import JOB_FINISH, LOCK_EXTEND, LOCK_RELEASE, run
from relay.worker.deadletter import replay

Action = Literal["replay", "purge"]
ACTIONS: tuple[Action, ...] = ("replay", "purge")
JOB_TTL_S = 7 * 86_400
LOCK_TTL_MS = 30_000
REFRESH_S = 10.0
FLUSH_EVERY = 100  # counts written to the job's hash every this many dead letters


class JobRunning(Exception):
    """The stream has a job running already (its id in ``job``)."""

    def __init__(self, job: str) -> None:
        super().__init__(f"job {job} is running on this stream")
        self.job = job


class Job:
    """One submitted job; ``run()`` does it (in the process that submitted it)."""

    def __init__(self, redis: Redis, job_id: str, stream: str, action: Action, total: int,
                 selection: Selection) -> None:  # fmt: skip
        self.redis, self.id, self.stream, self.action = redis, job_id, stream, action
        self.total, self.selection = total, selection
        self.counts = {"done": 0, "skipped": 0, "failed": 0}
        self._flushed = dict(self.counts)

    async def run(self, progress: Callable[[dict[str, int]], None] | None = None) -> str:
        """Act on every selected dead letter; the final state. Counts reach the job's
        hash every ``FLUSH_EVERY`` dead letters and at the end; the lock is refreshed
        meanwhile; a cancel is seen within one page."""
        refresher = asyncio.create_task(self._keep_lock())
        state, error = "done", ""
        try:
            seen = 0
            selected = matching(self.redis, self.stream, self.selection)
            async with contextlib.aclosing(selected):
                async for dlq_id in selected:
                    if seen % FLUSH_EVERY == 0:  # a page begins: report, and heed a cancel
                        await self._flush()
                        if progress is not None and seen:
                            progress(dict(self.counts))
                        if await self.redis.hget(job_key(self.id), "state") != b"running":
                            break
                    await self._act(dlq_id)
                    seen += 1
        except asyncio.CancelledError:
            state, error = "failed", "interrupted: the process running it stopped"
            raise
        except Exception as exc:  # Redis went away: the job says so, a resubmit resumes
            state, error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            refresher.cancel()
            with contextlib.suppress(Exception):
                await self._flush()
                state = (await self._finish(state, error)) or state
                await run(self.redis, LOCK_RELEASE, [job_lock_key(self.stream)], [self.id])
        return state

    async def _act(self, dlq_id: str) -> None:
        try:
            if self.action == "replay":
                # "finished": another replay had put it back; this one only removed it.
                done = await replay(self.redis, self.stream, dlq_id) == "replayed"
            else:
                done = bool(await self.redis.xdel(dlq_stream(self.stream), dlq_id))
        except ResponseError:  # Redis refused this one (a connection error ends the job)
            self.counts["failed"] += 1
            return
        self.counts["done" if done else "skipped"] += 1

    async def _flush(self) -> None:
        delta = {k: v - self._flushed[k] for k, v in self.counts.items() if v != self._flushed[k]}
        if not delta:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for name, amount in delta.items():
                pipe.hincrby(job_key(self.id), name, amount)
            await pipe.execute()
        self._flushed = dict(self.counts)

    async def _finish(self, state: str, error: str) -> str | None:
        now = str(time.time_ns() // 1_000_000)
        final = await run(self.redis, JOB_FINISH, [job_key(self.id)], [state, error, now])
        return final.decode() if isinstance(final, bytes) else None

    async def _keep_lock(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            with contextlib.suppress(Exception):
                await run(
                    self.redis, LOCK_EXTEND, [job_lock_key(self.stream)], [self.id, LOCK_TTL_MS]
                )


async def submit(redis: Redis, stream: str, action: Action, selection: Selection) -> Job:
    """Take the stream's lock, count what the selection matches now (the job's ``total``),
    record the job; run it with ``Job.run()``. Raises :class:`JobRunning`."""
    job_id = uuid.uuid4().hex[:16]
    if not await redis.set(job_lock_key(stream), job_id, nx=True, px=LOCK_TTL_MS):
        current = await redis.get(job_lock_key(stream))
        raise JobRunning(_text(current) if current else "?")
    try:
        total = (await dry_run(redis, stream, selection))["matched"]
        await redis.hset(job_key(job_id), mapping={
            "job": job_id, "action": action, "stream": stream, "state": "running",
            "total": total, "done": 0, "skipped": 0, "failed": 0, "error": "",
            "created_at": time.time_ns() // 1_000_000,
        })  # fmt: skip
        await redis.expire(job_key(job_id), JOB_TTL_S)
    except BaseException:
        await run(redis, LOCK_RELEASE, [job_lock_key(stream)], [job_id])
        raise
    return Job(redis, job_id, stream, action, int(total), selection)


async def job_status(redis: Redis, job_id: str) -> dict[str, Any] | None:
    """The contract's job document, or ``None`` for an unknown (or expired) job. A job
    still ``running`` whose lock it no longer holds was cut off: ``failed``."""
    raw = await redis.hgetall(job_key(job_id))
    if not raw:
        return None
    fields = {_text(k): _text(v) for k, v in raw.items()}
    state = fields.get("state", "failed")
    error = fields.get("error", "")
    if state == "running":
        holder = await redis.get(job_lock_key(fields.get("stream", "")))
        if holder is None or _text(holder) != job_id:
            state, error = "failed", "interrupted: the process running it stopped"
    document: dict[str, Any] = {
        "job": job_id,
        "action": fields.get("action"),
        "stream": fields.get("stream"),
        "state": state,
        **{name: int(fields.get(name) or 0) for name in ("total", "done", "skipped", "failed")},
    }
    if error:
        document["error"] = error
    return document


async def cancel(redis: Redis, job_id: str) -> dict[str, Any] | None:
    """Stop a running job (its runner sees it within one page); the job's document."""
    status = await job_status(redis, job_id)
    if status is None:
        return None
    if status["state"] == "running":
        now = time.time_ns() // 1_000_000
        await run(redis, JOB_FINISH, [job_key(job_id)], ["cancelled", "", now])
    return await job_status(redis, job_id)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
