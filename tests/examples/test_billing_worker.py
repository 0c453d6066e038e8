"""examples/billing_worker.py without BILLING_API_URL, as the example Deployment and
`relay dev` run it: it logs what it would bill and acknowledges."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from examples import billing_worker
from relay.worker import Event


async def test_without_a_billing_api_it_logs_and_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(billing_worker, "BILLING_API_URL", "")
    data = {"extraction_id": "ex-1", "status": "processed"}
    event = Event(
        payload={"event": "extraction.completed", "data": data},
        id="msg_1", event="extraction.completed", stream="anyformat:events",
        entry_id="1-0", attempt=1,
    )  # fmt: skip
    with capture_logs() as logs:
        assert await billing_worker.handle(event) is None  # returned: acknowledged
    (line,) = logs
    assert line["event"] == "would_bill"
    assert line["usage"] == {"extraction_id": "ex-1", "status": "processed",
                             "event": "extraction.completed"}  # fmt: skip


async def test_a_failed_extraction_is_acknowledged_and_never_billed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A billing URL nothing listens on: billing would raise, so returning proves no call.
    monkeypatch.setattr(billing_worker, "BILLING_API_URL", "http://127.0.0.1:9/usage")
    data = {"extraction_id": "ex-2", "status": "error"}
    event = Event(
        payload={"event": "extraction.failed", "data": data},
        id="msg_2", event="extraction.failed", stream="anyformat:events",
        entry_id="2-0", attempt=1,
    )  # fmt: skip
    with capture_logs() as logs:
        assert await billing_worker.handle(event) is None
    assert [line["event"] for line in logs] == ["not_billed"]
