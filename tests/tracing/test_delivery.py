"""The relay's spans, in-process (the SDK's in-memory exporter): the edges of a delivery."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from relay.streams.errors import StreamsUnavailable
from relay.streams.writer import Entry, FanoutWriter
from relay.tracing.otel import OtelTracing
from tests.conftest import StartRelay
from tests.support.redis_server import RedisServer
from tests.support.signing import event_body, sign
from tests.support.tracing import in_memory_tracing

PATH = "/webhooks/anyformat"


@pytest.fixture
def traced() -> Iterator[tuple[OtelTracing, InMemorySpanExporter]]:
    with in_memory_tracing() as pair:
        yield pair


@pytest.mark.parametrize(
    "header",
    ["garbage", "00-00000000000000000000000000000000-0000000000000000-01", "00-abc-def-01"],
)
async def test_a_malformed_or_invalid_incoming_traceparent_is_no_link_and_no_error(
    traced: tuple[OtelTracing, InMemorySpanExporter],
    start_relay: StartRelay,
    redis_url: str,
    http: aiohttp.ClientSession,
    header: str,
) -> None:
    _, exporter = traced
    server = await start_relay(redis_url)
    body = event_body()
    url = f"http://127.0.0.1:{server.public_port}{PATH}"
    async with http.post(url, data=body, headers={**sign(body), "traceparent": header}) as answer:
        assert answer.status == 200
    [request] = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert request.links == ()
    assert request.parent is None
    assert request.attributes is not None
    assert request.attributes["relay.outcome"] == "accepted"


async def test_redis_down_ends_the_send_spans_as_errors_naming_no_host(
    traced: tuple[OtelTracing, InMemorySpanExporter], own_redis: RedisServer
) -> None:
    from redis.asyncio import Redis

    tracing, exporter = traced
    client = Redis.from_url(own_redis.url, socket_timeout=1)
    writer = FanoutWriter(client, dedupe_ttl=60, tracing=tracing)
    own_redis.close()
    entry = Entry("msg_down", "extraction.completed", b"{}", 0, "", "", None)
    with pytest.raises(StreamsUnavailable):
        await writer.write(entry, ["s:a", "s:b"])
    await client.aclose()
    spans = exporter.get_finished_spans()
    assert sorted(s.name for s in spans) == ["send s:a", "send s:b"]
    for span in spans:
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description is None
        assert span.attributes is not None
        assert "error.type" in span.attributes
        assert "messaging.message.id" not in span.attributes
        assert span.events == ()  # no exception event: its message names the host
