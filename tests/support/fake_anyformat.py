"""A fake AnyFormat API over real sockets, following the published OpenAPI.

Bearer auth; ``POST /v2/webhooks/`` → 201 with a ``whsec_`` secret, 422 with a ``detail``
list for non-https URLs and unknown events, and at the 50-subscription limit;
``GET /v2/webhooks/`` → the list, never with secrets; ``DELETE /v2/webhooks/{id}/`` → 204
or 404. Switches make it answer 401, 429 with ``Retry-After``, 500, or slowly; make a create
take effect but lose its answer (connection reset, a 504, or no answer until the client
times out); or hold every call of one method until released (a client paused mid-call). It
runs in a thread of its own so that both async tests and relay processes can call it.

The v3 lists reconciliation reads (``runs-api.md``) are a block of their own: workflows and
their runs as keyset pages (``limit`` 1 to 100, ``cursor``, ``next_cursor``), newest first,
with failures of their own (``fail_v3_next``) so that they never take a registration test's.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

API_KEY = "afk_test_4f9c2b7e1d"
KNOWN_EVENTS = ("extraction.completed", "extraction.failed")
LIMIT = 50


@dataclass
class Call:
    method: str
    path: str
    body: Any = None
    authorization: str | None = None
    user_agent: str | None = None
    status: int = 0
    lost: str | None = None  # the answer the client never got: "reset", "error", "timeout"


@dataclass
class Failure:
    status: int
    retry_after: str | None = None


# --- v3: workflows and runs (reconciliation) ---------------------------------------------


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class _V3:
    """Mixed into :class:`FakeAnyFormat` below: the data, its controls, its handlers."""

    workflows: list[dict[str, Any]]
    runs: dict[str, list[dict[str, Any]]]
    v3_failures: list[Failure]
    calls: list[Call]

    def add_workflow(self, name: str | None = None) -> str:
        workflow_id = str(uuid.uuid4())
        self.workflows.append(
            {"id": workflow_id, "name": name or f"workflow {len(self.workflows) + 1}",
             "created_at": iso(datetime.now(UTC))}
        )  # fmt: skip
        self.runs[workflow_id] = []
        return workflow_id

    def add_run(
        self,
        workflow_id: str,
        status: str,
        created_at: datetime,
        updated_at: datetime | None = None,
        *,
        run_id: str | None = None,
    ) -> str:
        run = {
            "id": run_id or str(uuid.uuid4()),
            "document_packet_id": str(uuid.uuid4()),
            "status": status,
            "created_at": iso(created_at),
            "updated_at": iso(updated_at if updated_at is not None else created_at),
        }
        self.runs[workflow_id].append(run)
        return str(run["id"])

    def fail_v3_next(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        self.v3_failures.extend(Failure(status, retry_after) for _ in range(times))

    def v3_calls(self) -> list[Call]:
        return [c for c in self.calls if c.path.startswith("/v3/")]

    def _v3_failure(self) -> web.Response | None:
        if not self.v3_failures:
            return None
        failure = self.v3_failures.pop(0)
        headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
        return web.json_response(
            {"detail": "failure", "error_code": "rate_limited" if failure.status == 429
             else "internal_error", "retryable": True},
            status=failure.status, headers=headers,
        )  # fmt: skip

    async def _list_workflows(self, request: web.Request) -> web.Response:
        return self._v3_failure() or _keyset(request, self.workflows)

    async def _list_runs(self, request: web.Request) -> web.Response:
        runs = self.runs.get(request.match_info["workflow_id"])
        if runs is None:
            return web.json_response({"detail": "Workflow not found"}, status=404)
        return self._v3_failure() or _keyset(request, runs)

    async def _get_run(self, request: web.Request) -> web.Response:
        for workflow_id, runs in self.runs.items():
            for run in runs:
                if run["id"] == request.match_info["run_id"]:
                    return web.json_response({**run, "workflow_id": workflow_id, "results": None})
        return web.json_response({"detail": "Run not found"}, status=404)


def _keyset(request: web.Request, rows: list[dict[str, Any]]) -> web.Response:
    """One page, newest first by ``created_at`` (then id); the cursor is the last row's
    sort key, so rows added meanwhile never shift a walk in progress."""
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        return web.json_response(
            {"detail": [{"loc": ["query", "limit"], "msg": "must be between 1 and 100",
                         "type": "value_error"}]}, status=422,
        )  # fmt: skip
    ordered = sorted(rows, key=lambda row: (row["created_at"] or "", row["id"]), reverse=True)
    if cursor := request.query.get("cursor"):
        try:
            after = tuple(json.loads(base64.urlsafe_b64decode(cursor)))
        except ValueError:
            return web.json_response({"detail": "Invalid cursor"}, status=400)
        ordered = [row for row in ordered if (row["created_at"] or "", row["id"]) < after]
    page = ordered[:limit]
    next_cursor = None
    if len(ordered) > limit:
        last = page[-1]
        key = json.dumps([last["created_at"] or "", last["id"]]).encode()
        next_cursor = base64.urlsafe_b64encode(key).decode()
    return web.json_response({"items": page, "next_cursor": next_cursor})


@dataclass
class FakeAnyFormat(_V3):
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    delay: float = 0.0
    lost_creates: list[str] = field(default_factory=list)
    port: int = 0
    workflows: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    v3_failures: list[Failure] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ids = itertools.count(1_000_000_001)
        self._held: dict[str, asyncio.Event] = {}
        self._closing = asyncio.Event()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    # --- test controls -----------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        self.failures.extend(Failure(status, retry_after) for _ in range(times))

    def lose_next_create(self, how: str, times: int = 1) -> None:
        """The next create(s) take effect, but the client gets no answer: ``reset`` (the
        connection is dropped), ``error`` (a 504 instead of the 201), ``timeout`` (nothing
        until the client gives up)."""
        assert how in ("reset", "error", "timeout"), how
        self.lost_creates.extend([how] * times)

    def hold(self, method: str) -> None:
        """Calls of ``method`` arrive (and are recorded) but wait for :meth:`release`."""
        self._held[method] = asyncio.Event()

    def release(self, method: str) -> None:
        event = self._held.pop(method)
        self._loop.call_soon_threadsafe(event.set)

    def add(self, url: str, events: list[str] | None = None, active: bool = True) -> str:
        """A subscription made by someone else (its secret is not ours)."""
        return self._create(url, list(events or KNOWN_EVENTS), active)["id"]

    def created(self) -> list[Call]:
        return [c for c in self.calls if c.method == "POST" and c.status == 201]

    def deleted(self) -> list[str]:
        return [c.path.split("/")[-2] for c in self.calls if c.method == "DELETE"]

    def for_url(self, url: str) -> list[dict[str, Any]]:
        return [w for w in self.webhooks.values() if w["url"] == url]

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> FakeAnyFormat:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._closing.set)
        for event in self._held.values():
            self._loop.call_soon_threadsafe(event.set)
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _serve(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/v2/webhooks/", self._post)
        app.router.add_get("/v2/webhooks/", self._list)
        app.router.add_delete("/v2/webhooks/{webhook_id}/", self._delete)
        app.router.add_get("/health/", self._health)
        app.router.add_get("/v3/workflows/", self._list_workflows)
        app.router.add_get("/v3/workflows/{workflow_id}/runs/", self._list_runs)
        app.router.add_get("/v3/runs/{run_id}/", self._get_run)
        # A request still held at close (a delay, a held method) must not hold the teardown.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    # --- the API -----------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        call = Call(
            request.method,
            request.path,
            body,
            request.headers.get("Authorization"),
            request.headers.get("User-Agent"),
        )
        self.calls.append(call)
        if self.delay:
            await asyncio.sleep(self.delay)
        held = self._held.get(request.method)
        if held is not None:
            await held.wait()
        response = await self._answer(request, handler)
        response.headers["X-API-Version"] = "2.0.0"
        call.status = response.status
        return response

    async def _answer(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/health/":
            return await handler(request)
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return web.json_response({"detail": "Invalid API key"}, status=401)
        if self.failures and not request.path.startswith("/v3/"):
            failure = self.failures.pop(0)
            headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
            return web.json_response({"detail": "failure"}, status=failure.status, headers=headers)
        return await handler(request)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.json()
        errors = []
        url = body.get("url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url:
            errors.append({"loc": ["body", "url"], "msg": "Field required", "type": "missing"})
        elif not url.startswith("https://"):
            errors.append(
                {"loc": ["body", "url"], "msg": "URL must use HTTPS", "type": "value_error"}
            )
        events = body.get("events", list(KNOWN_EVENTS)) if isinstance(body, dict) else []
        for event in events:
            if event not in KNOWN_EVENTS:
                errors.append(
                    {"loc": ["body", "events"], "msg": f"Unknown event: {event}",
                     "type": "value_error"}
                )  # fmt: skip
        active = sum(1 for w in self.webhooks.values() if w["is_active"])
        if not errors and active >= LIMIT:
            errors.append(
                {"loc": ["body"], "msg": f"Maximum of {LIMIT} active webhooks reached",
                 "type": "value_error"}
            )  # fmt: skip
        if errors:
            return web.json_response({"detail": errors}, status=422)
        webhook = self._create(url, events, True)
        if self.lost_creates:
            return await self._lose_answer(request, self.lost_creates.pop(0))
        return web.json_response({**webhook, "secret": self.secrets[webhook["id"]]}, status=201)

    async def _lose_answer(self, request: web.Request, how: str) -> web.Response:
        """The subscription exists now; its answer (and secret) never reach the client."""
        self.calls[-1].lost = how
        if how == "error":
            return web.json_response({"detail": "Gateway timeout"}, status=504)
        if how == "timeout":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), 60)
        assert request.transport is not None
        request.transport.abort()  # the connection is reset under the client
        return web.Response(status=201)

    def _create(self, url: str, events: list[str], active: bool) -> dict[str, Any]:
        webhook_id = f"wh_{next(self._ids)}"
        webhook = {
            "id": webhook_id,
            "url": url,
            "events": events,
            "is_active": active,
            "created_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        self.webhooks[webhook_id] = webhook
        self.secrets[webhook_id] = "whsec_" + base64.b64encode(os.urandom(24)).decode()
        return webhook

    async def _list(self, request: web.Request) -> web.Response:
        return web.json_response(list(self.webhooks.values()))

    async def _delete(self, request: web.Request) -> web.Response:
        webhook_id = request.match_info["webhook_id"]
        if self.webhooks.pop(webhook_id, None) is None:
            return web.json_response({"detail": "Webhook not found"}, status=404)
        return web.Response(status=204)
