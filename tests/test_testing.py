"""relay.testing: a handler tested without Redis gets the runtime's verdict on each attempt."""

from __future__ import annotations

import asyncio

import pytest

from relay import Event, Reject, Retry, RetryPolicy
from relay.testing import make_event, run_handler

POLICY = RetryPolicy(max_attempts=3, backoff_base=2.0, backoff_max=10.0)


async def ok(event: Event) -> None:
    return None


async def boom(event: Event) -> None:
    raise RuntimeError("downstream said 500")


def test_an_event_name_gives_a_sample_shaped_like_anyformats() -> None:
    event = make_event("extraction.failed")
    assert event.event == "extraction.failed"
    assert event.payload["event"] == "extraction.failed"
    assert event.payload["data"]["status"] == "error"
    assert event.extraction_id == event.payload["data"]["extraction_id"] != ""
    assert (event.attempt, event.source, event.stream) == (1, "webhook", "anyformat:events")
    assert event.id.startswith("msg_") and event.received_at is not None


def test_a_payload_and_overrides_are_taken_as_given() -> None:
    payload = {"event": "extraction.completed", "data": {"extraction_id": "ex-1"}}
    event = make_event(payload, attempt=4, id="msg_fixed", source="reconciled",
                       traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")  # fmt: skip
    assert (event.payload, event.id, event.attempt) == (payload, "msg_fixed", 4)
    assert (event.extraction_id, event.workflow_id, event.source) == ("ex-1", "", "reconciled")
    assert event.fields["traceparent"].startswith(b"00-")


def test_an_unknown_event_name_is_refused() -> None:
    with pytest.raises(ValueError, match=r"extraction\.completed"):
        make_event("extraction.done")


async def test_a_handler_that_returns_is_handled() -> None:
    assert (await run_handler(ok, make_event())).outcome == "handled"


async def test_a_failure_is_retried_after_the_policys_backoff() -> None:
    first = await run_handler(boom, make_event(attempt=1), policy=POLICY)
    second = await run_handler(boom, make_event(attempt=2), policy=POLICY)
    assert (first.outcome, first.dead_letter, first.error) == (
        "retry", False, "RuntimeError: downstream said 500",
    )  # fmt: skip
    assert first.wait is not None and 1.0 <= first.wait <= 2.0  # half to all of base
    assert second.wait is not None and 2.0 <= second.wait <= 4.0  # doubled


async def test_the_last_attempt_failing_dead_letters() -> None:
    result = await run_handler(boom, make_event(attempt=3), policy=POLICY)
    assert (result.outcome, result.dead_letter, result.wait) == ("retry", True, None)


async def test_retry_after_sets_the_wait() -> None:
    async def later(event: Event) -> None:
        raise Retry(after=30)

    result = await run_handler(later, make_event(), policy=POLICY)
    assert (result.outcome, result.wait, result.dead_letter) == ("retry", 30, False)


async def test_reject_dead_letters_at_once_with_its_reason() -> None:
    async def refuse(event: Event) -> None:
        raise Reject("customer deleted")

    result = await run_handler(refuse, make_event(attempt=1), policy=POLICY)
    assert (result.outcome, result.dead_letter, result.wait) == ("reject", True, None)
    assert result.error == "Reject: customer deleted"


async def test_a_handler_past_its_timeout_is_a_timed_out_attempt() -> None:
    never = asyncio.Event()

    async def stuck(event: Event) -> None:
        await never.wait()

    result = await run_handler(stuck, make_event(), policy=POLICY, handler_timeout=0.01)
    assert (result.outcome, result.dead_letter) == ("timeout", False)
    assert result.wait is not None and result.error.startswith("HandlerTimeout")


async def test_a_timeout_error_the_handler_raises_itself_is_a_plain_failure() -> None:
    async def raises(event: Event) -> None:
        raise TimeoutError("upstream timed out")

    result = await run_handler(raises, make_event(), policy=POLICY, handler_timeout=5)
    assert result.outcome == "retry"


def test_one_import_surface_with_docstrings() -> None:
    import relay

    for name in ("Event", "Worker", "Reject", "Retry", "RetryPolicy"):
        cls = getattr(relay, name)
        assert cls.__doc__ and len(cls.__doc__) > 80, name
    assert set(relay.__all__) >= {"Event", "Worker", "Reject", "Retry", "RetryPolicy"}
