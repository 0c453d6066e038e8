"""A traced relay and a traced worker, real processes exporting to an OTLP receiver.

One event delivered and handled (retried once) is one trace: the HTTP request, a send per
stream it was written to, and each processing attempt, with the handler's own spans
beneath; the entries carry their send span's context; every log line inside a span names
it. With no endpoint, no entry carries a ``traceparent`` and no log line a trace id.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.otlp import OtlpReceiver, Span, tracing_env
from tests.support.process import RelayProcess
from tests.support.redis_server import RedisServer
from tests.support.signing import SECRET, event_body, sign
from tests.support.waiting import wait_for_sync

pytestmark = pytest.mark.process

ROOT = str(Path(__file__).resolve().parents[2])
STREAM, GROUP = "anyformat:events", "billing"
PATH = "/webhooks/anyformat"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


def relay(server: RedisServer, **env: str) -> RelayProcess:
    return RelayProcess(
        {"RELAY_REDIS_URL": server.url, "RELAY_REGISTER": "false",
         "RELAY_WEBHOOK_SECRET": SECRET, **env}
    )  # fmt: skip


def worker(server: RedisServer, handler: str, **env: str) -> RelayProcess:
    process = RelayProcess(
        {"RELAY_REDIS_URL": server.url, **env},
        "worker", "--stream", STREAM, "--group", GROUP, "--handler", handler,
        "--start-id", "0", "--backoff-base", "0.05", "--max-attempts", "2",
        cwd=ROOT,
    )  # fmt: skip
    process.args = (*process.args, "--metrics-port", str(process.admin_port))
    return process


def lines(process: RelayProcess) -> list[dict[str, object]]:
    return [json.loads(line) for line in process.output().splitlines() if line.startswith("{")]


def only(spans: list[Span], **match: object) -> Span:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, found)
    return found[0]


async def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}{PATH}", data=body, headers=headers) as response,
    ):
        await response.read()
        return response.status


async def test_an_event_retried_once_then_handled_is_one_trace(
    own_redis: RedisServer, receiver: OtlpReceiver
) -> None:
    traced = tracing_env(receiver)
    relay_process = relay(own_redis, **traced).start()
    worker_process = worker(own_redis, "tests.tracing.handlers:fails_once", **traced)
    try:
        # The sender's own trace context: from the internet, so a link and never the parent.
        theirs = (secrets.token_hex(16), secrets.token_hex(8))
        body = event_body()
        headers = {**sign(body, msg_id="msg_traced"),
                   "traceparent": f"00-{theirs[0]}-{theirs[1]}-01"}  # fmt: skip
        assert await post(relay_process.url, body, headers) == 200
        worker_process.start(wait_ready=False)

        def complete(spans: list[Span]) -> bool:
            process = [s for s in spans if s.name == f"process {STREAM}"]
            return len(process) == 2 and sum(s.name == "bill" for s in spans) == 2

        spans = receiver.wait_for(complete)
    finally:
        assert worker_process.terminate() == 0
        assert relay_process.terminate() == 0
    client = own_redis.client()

    server = only(spans, kind="SERVER")
    assert server.name == f"POST {PATH}"
    assert server.service == "anyformat-relay"
    assert server.parent_id == ""
    assert server.trace_id != theirs[0]
    assert server.links == [theirs]
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["url.path"] == PATH
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["client.address"] == "127.0.0.1"
    assert server.attributes["relay.outcome"] == "accepted"
    assert server.attributes["relay.webhook_id"] == "msg_traced"

    # A send per stream, each the parent of nothing but what its entry carries.
    streams = [STREAM, f"{STREAM}:extraction.completed"]
    sends = {}
    for stream in streams:
        [(entry_id, fields)] = client.xrange(stream)
        send = only(spans, name=f"send {stream}")
        assert send.kind == "PRODUCER"
        assert (send.trace_id, send.parent_id) == (server.trace_id, server.span_id)
        assert send.attributes["messaging.system"] == "redis"
        assert send.attributes["messaging.operation.type"] == "send"
        assert send.attributes["messaging.destination.name"] == stream
        assert send.attributes["messaging.message.id"] == entry_id.decode()
        assert send.is_in(fields[b"traceparent"])
        sends[stream] = (entry_id.decode(), send)
    entry_id, send = sends[STREAM]

    # Each attempt a CONSUMER span child of the entry's send span; the handler's beneath.
    attempts = sorted(
        (s for s in spans if s.name == f"process {STREAM}"),
        key=lambda s: s.attributes["relay.attempt"],
    )
    assert [s.attributes["relay.attempt"] for s in attempts] == [1, 2]
    assert [s.attributes["relay.outcome"] for s in attempts] == ["retry", "handled"]
    for attempt in attempts:
        assert attempt.kind == "CONSUMER"
        assert attempt.service == "anyformat-relay-worker"
        assert (attempt.trace_id, attempt.parent_id) == (server.trace_id, send.span_id)
        assert attempt.attributes["messaging.consumer.group.name"] == GROUP
        assert attempt.attributes["messaging.message.id"] == entry_id
        assert attempt.attributes["messaging.destination.name"] == STREAM
    [(event_name, exception)] = attempts[0].events
    assert event_name == "exception"
    assert exception["exception.type"] == "ConnectionError"
    assert exception["exception.message"] == "billing API unreachable"
    assert attempts[1].events == []
    bills = {s.parent_id for s in spans if s.name == "bill"}
    assert bills == {a.span_id for a in attempts}
    assert {s.trace_id for s in spans} == {server.trace_id}  # one trace, nothing else

    # Log lines written inside a span name it.
    [delivery] = [line for line in lines(relay_process) if line["msg"] == "delivery"]
    assert (delivery["trace_id"], delivery["span_id"]) == (server.trace_id, server.span_id)
    logged = [line for line in lines(worker_process) if line["msg"] == "attempt"]
    assert [(line["trace_id"], line["span_id"]) for line in logged] == [
        (a.trace_id, a.span_id) for a in attempts
    ]
    started = next(line for line in lines(worker_process) if line["msg"] == "worker_started")
    assert "trace_id" not in started  # outside any span
    for process, service in ((relay_process, "anyformat-relay"),
                             (worker_process, "anyformat-relay-worker")):  # fmt: skip
        [on] = [line for line in lines(process) if line["msg"] == "tracing_on"]
        assert on["service"] == service


async def test_duplicates_and_rejections_are_spans_and_concurrent_entries_keep_their_own(
    own_redis: RedisServer, receiver: OtlpReceiver
) -> None:
    relay_process = relay(own_redis, **tracing_env(receiver)).start()
    try:
        body = event_body()
        first = sign(body, msg_id="msg_twice")
        assert await post(relay_process.url, body, first) == 200
        assert await post(relay_process.url, body, first) == 200  # the duplicate
        assert await post(relay_process.url, body, {}) == 401
        # Deliveries at once share the writer's batches: each entry keeps its own span.
        bodies = [event_body() for _ in range(20)]
        async with aiohttp.ClientSession() as http:

            async def deliver(index: int) -> int:
                headers = sign(bodies[index], msg_id=f"msg_batch_{index}")
                async with http.post(
                    f"{relay_process.url}{PATH}", data=bodies[index], headers=headers
                ) as response:
                    return response.status

            assert await asyncio.gather(*(deliver(i) for i in range(20))) == [200] * 20
        spans = receiver.wait_for(lambda spans: sum(s.kind == "SERVER" for s in spans) == 23)
        spans = receiver.wait_for(lambda spans: sum(s.kind == "PRODUCER" for s in spans) == 42)
    finally:
        assert relay_process.terminate() == 0

    servers = [s for s in spans if s.kind == "SERVER"]
    twice = [s for s in servers if s.attributes.get("relay.webhook_id") == "msg_twice"]
    assert sorted(s.attributes["relay.outcome"] for s in twice) == ["accepted", "duplicate"]
    duplicate = next(s for s in twice if s.attributes["relay.outcome"] == "duplicate")
    assert not [s for s in spans if s.parent_id == duplicate.span_id]  # it sent nothing
    rejected = next(s for s in servers if s.attributes["relay.outcome"] == "rejected")
    assert rejected.attributes["http.response.status_code"] == 401
    assert rejected.attributes["relay.reason"] == "missing_signature"
    assert "relay.webhook_id" not in rejected.attributes

    accepted = [s for s in servers if s.attributes["relay.outcome"] == "accepted"]
    by_webhook = {s.attributes["relay.webhook_id"]: s for s in accepted}
    client = own_redis.client()
    for stream in (STREAM, f"{STREAM}:extraction.completed"):
        entries = client.xrange(stream)
        assert len(entries) == 21
        for entry_id, fields in entries:
            [send] = [s for s in spans if s.is_in(fields[b"traceparent"])]
            assert send.name == f"send {stream}"
            assert send.attributes["messaging.message.id"] == entry_id.decode()
            server = by_webhook[fields[b"id"].decode()]
            assert (send.trace_id, send.parent_id) == (server.trace_id, server.span_id)


async def test_with_no_endpoint_no_entry_carries_a_traceparent_nor_a_line_a_trace_id(
    own_redis: RedisServer,
) -> None:
    relay_process = relay(own_redis).start()
    worker_process = worker(own_redis, "tests.tracing.handlers:fails_once")
    try:
        body = event_body()
        assert await post(relay_process.url, body, sign(body)) == 200
        worker_process.start(wait_ready=False)
        client = own_redis.client()

        def attempts() -> int:
            return sum(line["msg"] == "attempt" for line in lines(worker_process))

        wait_for_sync(
            lambda: attempts() == 2 and client.xpending(STREAM, GROUP)["pending"] == 0,
            what="two attempts and nothing pending",
        )
    finally:
        assert worker_process.terminate() == 0
        assert relay_process.terminate() == 0
    for stream in (STREAM, f"{STREAM}:extraction.completed"):
        [(_, fields)] = client.xrange(stream)
        assert b"traceparent" not in fields and b"tracestate" not in fields
    for process in (relay_process, worker_process):
        assert all("trace_id" not in line for line in lines(process))
        assert "tracing_" not in process.output()  # nothing to say: no endpoint set


async def test_a_dead_letter_move_is_a_send_span_and_a_replay_a_new_trace_linked_to_it(
    own_redis: RedisServer, receiver: OtlpReceiver
) -> None:
    traced = tracing_env(receiver)
    relay_process = relay(own_redis, **traced).start()
    worker_process = worker(own_redis, "tests.tracing.handlers:rejects", **traced)
    dlq = f"{STREAM}:dlq"
    try:
        body = event_body()
        assert await post(relay_process.url, body, sign(body)) == 200
        worker_process.start(wait_ready=False)
        spans = receiver.wait_for(lambda spans: any(s.name == f"send {dlq}" for s in spans))
        assert worker_process.terminate() == 0
        replaying = RelayProcess(
            {"RELAY_REDIS_URL": own_redis.url, **traced}, "dlq", "replay", STREAM, "--all"
        ).start(wait_ready=False)
        assert replaying.process is not None
        assert replaying.process.wait(timeout=30) == 0, replaying.output()
        spans = receiver.wait_for(lambda spans: sum(s.name == f"send {STREAM}" for s in spans) == 2)
    finally:
        worker_process.kill()
        assert relay_process.terminate() == 0
    client = own_redis.client()

    [attempt] = [s for s in spans if s.name == f"process {STREAM}"]
    assert attempt.attributes["relay.outcome"] == "rejected"
    assert attempt.status == 2  # error
    [(name, exception)] = attempt.events
    assert (name, exception["exception.type"]) == ("exception", "relay.worker.controls.Reject")
    assert attempt.attributes["error.type"] == "relay.worker.controls.Reject"
    move = only(spans, name=f"send {dlq}")
    assert move.kind == "PRODUCER"
    assert (move.trace_id, move.parent_id) == (attempt.trace_id, attempt.span_id)
    assert move.attributes["messaging.destination.name"] == dlq
    assert client.xlen(dlq) == 0  # replayed: the link below is what the dead letter carried
    dead = next(line for line in lines(worker_process) if line["msg"] == "dead_lettered")
    assert (dead["trace_id"], dead["span_id"]) == (move.trace_id, move.span_id)

    # The replay: a new trace whose send span links to the dead letter's.
    original, replayed = client.xrange(STREAM)
    sends = [s for s in spans if s.name == f"send {STREAM}"]
    first = next(s for s in sends if s.is_in(original[1][b"traceparent"]))
    again = next(s for s in sends if s is not first)
    assert again.is_in(replayed[1][b"traceparent"])
    assert again.attributes["messaging.message.id"] == replayed[0].decode()
    assert again.parent_id == ""
    assert again.trace_id != first.trace_id
    assert again.links == [(move.trace_id, move.span_id)]


async def test_an_endpoint_the_relay_cannot_use_is_said_once_and_traces_nothing(
    own_redis: RedisServer, receiver: OtlpReceiver
) -> None:
    relay_process = relay(
        own_redis, **tracing_env(receiver), OTEL_EXPORTER_OTLP_PROTOCOL="grpc"
    ).start()
    try:
        body = event_body()
        assert await post(relay_process.url, body, sign(body)) == 200
    finally:
        assert relay_process.terminate() == 0
    [off] = [line for line in lines(relay_process) if line["msg"] == "tracing_off"]
    assert off["level"] == "warning"
    assert str(off["reason"]).startswith("protocol_unsupported: grpc")
    [(_, fields)] = own_redis.client().xrange(STREAM)
    assert b"traceparent" not in fields
    assert receiver.requests == 0
