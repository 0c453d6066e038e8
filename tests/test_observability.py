"""Log lines: one JSON object per line, the per-delivery line shaped like every other one."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator

import orjson
import pytest
import structlog

from relay import observability
from relay.observability import LineWriter, configure_logging, log_delivery

FIELDS = {"id": "msg_1", "event": "extraction.completed", "outcome": "accepted", "status": 200}


class Recording(io.BytesIO):
    """A stdout stand-in that remembers each write() call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        # What configure_logging() is given; kept here, since closing it closes this.
        self.text = io.TextIOWrapper(self, write_through=True)

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writes.append(bytes(data))
        return super().write(data)


Configure = Callable[..., Recording]


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Iterator[Configure]:
    """configure_logging() onto a recording stream; the global set-up is restored after."""
    saved = structlog.get_config()
    for name in ("_json_lines", "_info_enabled"):
        monkeypatch.setattr(observability, name, getattr(observability, name))

    def configure(level: str = "info", fmt: str = "json") -> Recording:
        out = Recording()
        configure_logging(level, fmt, stream=out.text)
        return out

    yield configure
    structlog.configure(**saved)


def lines(out: Recording) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


async def test_the_delivery_line_has_the_keys_of_every_other_line(configure: Configure) -> None:
    out = configure()
    structlog.get_logger("relay.test").info("relay_started", port=8080)
    log_delivery(dict(FIELDS))
    await asyncio.sleep(0)  # lines go out at the end of the loop iteration
    started, delivery = lines(out)
    assert set(started) >= {"msg", "level", "timestamp"}
    assert delivery == {
        "msg": "delivery",
        **FIELDS,
        "level": "info",
        "timestamp": delivery["timestamp"],
    }
    assert str(delivery["timestamp"]).endswith("Z")


async def test_the_lines_of_one_loop_iteration_go_out_in_one_write(configure: Configure) -> None:
    out = configure()
    for n in range(50):
        log_delivery({**FIELDS, "id": f"msg_{n}"})
    assert out.writes == []  # held until the iteration ends
    await asyncio.sleep(0)
    assert len(out.writes) == 1
    assert [line["id"] for line in lines(out)] == [f"msg_{n}" for n in range(50)]


def test_without_a_running_loop_a_line_is_written_at_once() -> None:
    out = Recording()
    writer = LineWriter(out)
    writer.msg(b'{"msg":"x"}')
    assert out.writes == [b'{"msg":"x"}\n']


async def test_the_console_format_renders_the_delivery_through_structlog(
    configure: Configure,
) -> None:
    out = configure(fmt="console")
    log_delivery(dict(FIELDS))
    text = out.getvalue().decode()
    assert "delivery" in text and "event=extraction.completed" in text and "id=msg_1" in text


async def test_above_info_level_no_delivery_line_is_written(configure: Configure) -> None:
    out = configure(level="warning")
    log_delivery(dict(FIELDS))
    structlog.get_logger("relay.test").warning("redis_unavailable")
    await asyncio.sleep(0)
    assert [line["msg"] for line in lines(out)] == ["redis_unavailable"]


async def test_process_asyncio_tasks_counts_the_loops_tasks_at_scrape_time() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(observability.TaskCollector())

    def tasks() -> float:
        for line in generate_latest(registry).decode().splitlines():
            if line.startswith("process_asyncio_tasks "):
                return float(line.split()[1])
        raise AssertionError("no process_asyncio_tasks line")

    before = tasks()
    parked = [asyncio.create_task(asyncio.Event().wait()) for _ in range(5)]
    assert tasks() == before + 5
    for task in parked:
        task.cancel()
    await asyncio.gather(*parked, return_exceptions=True)
    assert tasks() == before


def test_process_asyncio_tasks_is_absent_without_a_running_loop() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(observability.TaskCollector())
    assert b"process_asyncio_tasks" not in generate_latest(registry)
