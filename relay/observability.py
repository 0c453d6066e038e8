"""structlog and Prometheus set-up, shared by the relay and the workers."""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
import time
from collections.abc import MutableMapping
from typing import Any, BinaryIO, TextIO

import orjson
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}  # fmt: skip


def configure_logging(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    """JSON lines (or a console view for people) on stdout, one event a line."""
    global _json_lines, _info_enabled
    out = stream or sys.stdout
    _json_lines = None
    _info_enabled = LEVELS[level] <= logging.INFO
    shared: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        add_timestamp,
    ]
    if fmt == "console":
        renderer: structlog.typing.Processor = structlog.dev.ConsoleRenderer(
            colors=False, event_key="msg"
        )
        factory: Any = structlog.PrintLoggerFactory(out)
    else:
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        writer = _json_lines = LineWriter(out.buffer)
        atexit.register(writer.flush)

        def factory(*args: Any) -> LineWriter:
            return writer

    # The message goes under "msg" so that "event" can carry the webhook's event name,
    # passed as ``_event=`` (a positional parameter of structlog's methods is "event").
    renamer = structlog.processors.EventRenamer("msg", replace_by="_event")
    structlog.configure(
        processors=[*shared, renamer, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # aiohttp and redis log through the standard library; keep their warnings visible.
    logging.basicConfig(level=max(LEVELS[level], logging.WARNING), stream=sys.stderr)


_json_lines: LineWriter | None = None  # the JSON writer, when that is the format
_info_enabled = True


def log_delivery(fields: dict[str, Any]) -> None:
    """The one line per delivery (``fields`` holds the webhook's ``event`` as is).

    In the JSON format the line is rendered here, with the keys structlog's chain gives
    every other line (msg, level, timestamp): at thousands of deliveries a second the
    chain costs more than all the rest of the line. Other formats go through structlog.
    """
    if not _info_enabled:
        return
    if _json_lines is not None:
        line = {"msg": "delivery", **fields, "level": "info"}
        _json_lines.msg(orjson.dumps(add_timestamp(None, "info", line)))
        return
    event = fields.pop("event", None)
    if event is not None:
        fields["_event"] = event
    # Looked up per call, not cached in the module: a cached logger keeps the stream of
    # whatever configuration it first met.
    structlog.get_logger("relay.ingest").info("delivery", **fields)


_second: list[Any] = [0, ""]  # the last whole second and its ISO 8601 text


def add_timestamp(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """ISO 8601 UTC with microseconds, formatting the date part once a second (structlog's
    TimeStamper formats it per line, a visible cost at thousands of lines a second)."""
    now = time.time()
    second = int(now)
    if second != _second[0]:
        _second[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    event_dict["timestamp"] = f"{_second[1]}.{int((now - second) * 1_000_000):06d}Z"
    return event_dict


class LineWriter:
    """A structlog logger writing the lines of one event-loop iteration with one write().

    At thousands of requests a second, a write() system call per log line is a visible
    share of each request. Lines are never dropped: they go out at the end of the loop
    iteration that logged them (at once when no loop runs), and at exit.
    """

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._pending: list[bytes] = []
        self._scheduled = False
        self._lock = threading.Lock()

    def msg(self, message: bytes) -> None:
        with self._lock:
            self._pending.append(message)
            if self._scheduled:
                return
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                self._scheduled = True
                loop.call_soon(self.flush)
        if loop is None:
            self.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = msg

    def flush(self) -> None:
        with self._lock:
            self._scheduled = False
            if not self._pending:
                return
            data = b"\n".join(self._pending) + b"\n"
            self._pending.clear()
        try:
            self._file.write(data)
            self._file.flush()
        except (OSError, ValueError):
            pass  # stdout closed: nowhere left to write


class TaskCollector(Collector):
    """``process_asyncio_tasks``: tasks alive on this process's event loop at scrape time.

    A task leaked per request or per reconnect grows without bound while memory grows
    slowly; the soak (bench/soak.py) judges this series by its slope. Scrapes run on the
    loop (the admin app), so the count is the loop's own; elsewhere nothing is reported.
    """

    def collect(self) -> list[GaugeMetricFamily]:
        try:
            tasks = len(asyncio.all_tasks())
        except RuntimeError:  # no running loop in this thread
            return []
        return [GaugeMetricFamily("process_asyncio_tasks", "asyncio tasks alive now.", tasks)]


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class IngestMetrics:
    """The relay's metrics, in a registry of their own so several apps can share a process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "relay_deliveries_received", "Deliveries received on the webhook path.", registry=r
        )
        self.accepted = Counter(
            "relay_deliveries_accepted", "Deliveries written to their streams.", registry=r
        )
        self.duplicate = Counter(
            "relay_deliveries_duplicate", "Deliveries already relayed before.", registry=r
        )
        self.conflicting = Counter(
            "relay_deliveries_conflicting",
            "Duplicates whose body differs from the first delivery's under that id (a "
            "sender reusing ids, or someone holding the secret); logged delivery_id_conflict.",
            registry=r,
        )
        self.rejected = Counter(
            "relay_deliveries_rejected", "Deliveries refused, by reason.", ["reason"], registry=r
        )
        self.unavailable = Counter(
            "relay_deliveries_unavailable",
            "Deliveries answered 503 (Redis down, no secret, shutting down), by reason.",
            ["reason"],
            registry=r,
        )
        self.redis_errors = Counter(
            "relay_redis_errors", "Redis errors on the delivery path.", registry=r
        )
        self.in_flight = Gauge(
            "relay_deliveries_in_flight",
            "Deliveries being written, their bodies read and verified (bounded by "
            "RELAY_MAX_IN_FLIGHT), sampled every second.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.connections = Gauge(
            "relay_public_connections",
            "Open connections on the public port (bounded by RELAY_MAX_CONNECTIONS), sampled "
            "every second.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.connections_refused = Counter(
            "relay_public_connections_refused",
            "Connections closed on arrival: RELAY_MAX_CONNECTIONS were already open.",
            registry=r,
        )
        self.entries_written = Counter(
            "relay_stream_entries_written", "Stream entries written by the fan-out.", registry=r
        )
        self.signing_keys = Gauge(
            "relay_signing_keys",
            "Webhook signing keys loaded; 0: deliveries are answered 503 no_secret.",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.dropped_unread = Counter(
            "relay_stream_entries_dropped_unread",
            "Entries a consumer group still needed, trimmed by RELAY_STREAM_HARD_MAXLEN.",
            ["stream"],
            registry=r,
        )
        self.build_info = Gauge(
            "relay_build_info", "The relay's version.", ["version"], registry=r,
            multiprocess_mode="max",
        )  # fmt: skip
        self.latency = Histogram(
            "relay_request_duration_seconds",
            "Time from request start to answer on the webhook path, by status.",
            ["status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )


class WorkerMetrics:
    """A worker's metrics; labelled by stream and group so one process may run several."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        labels = ["stream", "group"]
        self.handled = Counter(
            "relay_worker_handled", "Entries handled and acknowledged.", labels, registry=r
        )
        self.failed = Counter(
            "relay_worker_failed", "Handler attempts that raised.", labels, registry=r
        )
        self.retried = Counter(
            "relay_worker_retried", "Attempts scheduled after a failure.", labels, registry=r
        )
        self.dead_lettered = Counter(
            "relay_worker_dead_lettered", "Entries moved to the DLQ.", labels, registry=r
        )
        self.taken_over = Counter(
            "relay_worker_taken_over", "Entries claimed from idle consumers.", labels, registry=r
        )
        self.in_flight = Gauge(
            "relay_worker_in_flight", "Handlers running now.", labels, registry=r
        )
        self.latency = Histogram(
            "relay_worker_handler_duration_seconds",
            "Handler run time, by outcome.",
            [*labels, "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
