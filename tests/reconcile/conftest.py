from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis

from relay.reconcile.api import RunsApi
from relay.reconcile.sweep import Sweep
from relay.streams.routes import Router
from relay.streams.writer import FanoutWriter
from tests.support.fake_anyformat import API_KEY, FakeAnyFormat
from tests.support.registering import record_backoff

EVENTS = ["extraction.completed", "extraction.failed"]


@pytest.fixture(autouse=True)
def recorded_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the API client asks for (Retry-After, backoff), recorded, not slept."""
    return record_backoff(monkeypatch)


@pytest.fixture
async def runs_api(fake_api: FakeAnyFormat) -> AsyncIterator[RunsApi]:
    async with RunsApi(fake_api.url, SecretStr(API_KEY), total_timeout=5) as api:
        yield api


@pytest.fixture
def sweep(runs_api: RunsApi, client: Redis) -> Sweep:
    writer = FanoutWriter(client, dedupe_ttl=3600)
    return Sweep(runs_api, client, writer, Router("anyformat"), EVENTS)


def ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


@dataclass
class Organisation:
    """Workflows and runs on the fake API, with the runs a sweep must find remembered."""

    api: FakeAnyFormat
    expected: dict[str, str] = field(default_factory=dict)  # run id -> event
    other: list[str] = field(default_factory=list)  # runs a sweep must not write

    def workflow(self) -> str:
        return self.api.add_workflow()

    def finished(self, workflow_id: str, status: str, seconds_ago: float, took: float = 30) -> str:
        """A run that reached ``status`` ``seconds_ago`` (created ``took`` before that)."""
        run_id = self.api.add_run(workflow_id, status, ago(seconds_ago + took), ago(seconds_ago))
        if status == "processed":
            self.expected[run_id] = "extraction.completed"
        elif status == "error":
            self.expected[run_id] = "extraction.failed"
        return run_id

    def ignored(self, workflow_id: str, status: str, seconds_ago: float) -> str:
        """A run no sweep of the window may write (cancelled, unfinished, or outside)."""
        run_id = self.api.add_run(workflow_id, status, ago(seconds_ago + 30), ago(seconds_ago))
        self.other.append(run_id)
        return run_id


@pytest.fixture
def org(fake_api: FakeAnyFormat) -> Organisation:
    return Organisation(fake_api)
