"""The options of ``relay worker``, declared once: the CLI builds its flags from these
fields, the runtime (:class:`relay.worker.Worker`) takes its defaults from them, and a test
holds docs/workers.md's option table to them.

A leaf module (it imports nothing from relay): ``relay dlq --help`` reads it without
loading the worker runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Flag:
    """How one option appears on the command line: its flag, help and accepted range."""

    flag: str
    help: str | None = None
    kind: type = str
    minimum: float | None = None
    maximum: float | None = None
    minimum_open: bool = False  # the minimum itself is refused
    runtime: bool = True  # passed to Worker (False: used by the process around it)


def _option(default: Any = None, **flag: Any) -> Any:
    return field(default=default, metadata={"flag": Flag(**flag)})


def _required(**flag: Any) -> Any:
    return field(metadata={"flag": Flag(**flag)})


@dataclass(frozen=True)
class WorkerOptions:
    """Every option of one worker, with its default; the CLI's values in one object."""

    stream: str = _required(flag="--stream", help="Stream to consume.")
    group: str = _required(flag="--group", help="Consumer group (created when missing).")
    handler: str = _required(flag="--handler", help="package.module:function", runtime=False)
    lifespan: str | None = _option(
        flag="--lifespan",
        help="package.module:function, an async context manager run around the worker: "
        "set up shared resources once per process; what it yields is event.state.",
        runtime=False,
    )
    consumer: str | None = _option(
        flag="--consumer", help="Consumer name [default: host name + pid]."
    )
    concurrency: int = _option(10, flag="--concurrency", kind=int, minimum=1)
    max_held: int | None = _option(
        flag="--max-held",
        kind=int,
        minimum=1,
        help="Entries held at most (running, waiting for a slot or a retry); the worker "
        "takes no more until some finish.  [default: 10 x concurrency]",
    )
    max_attempts: int = _option(5, flag="--max-attempts", kind=int, minimum=1)
    backoff_base: float = _option(1.0, flag="--backoff-base", kind=float, minimum=0)
    backoff_max: float = _option(60.0, flag="--backoff-max", kind=float, minimum=0)
    handler_timeout: float | None = _option(
        flag="--handler-timeout",
        kind=float,
        minimum=0,
        minimum_open=True,
        help="Seconds a handler may run; a longer one is cancelled (a failed attempt).  "
        "[default: no limit]",
    )
    claim_idle: float = _option(
        60.0,
        flag="--claim-idle",
        kind=float,
        minimum=0,
        minimum_open=True,
        help="Seconds before another consumer's idle pending entry is taken over.",
    )
    outage_threshold: int = _option(
        10,
        flag="--outage-threshold",
        kind=int,
        minimum=0,
        help="Different entries failing in a row that mean a downstream outage: "
        "consumption pauses and failures stop counting as attempts (0: never pause).",
    )
    outage_probe_interval: float = _option(
        5.0,
        flag="--outage-probe-interval",
        kind=float,
        minimum=0,
        minimum_open=True,
        help="Seconds between probes (one held entry's attempt) during an outage.",
    )
    shutdown_timeout: float = _option(30.0, flag="--shutdown-timeout", kind=float, minimum=0)
    metrics_port: int | None = _option(
        flag="--metrics-port",
        kind=int,
        minimum=0,
        maximum=65535,
        help="Serve /metrics, /healthz and /readyz on this port.",
        runtime=False,
    )
    start_id: str = _option(
        "0",
        flag="--start-id",
        help="Where a new group starts: 0 (every entry still in the stream) or $ (only "
        "entries written from now on).",
    )

    @staticmethod
    def flags() -> dict[str, Flag]:
        """Each field's name and its flag, in declaration order."""
        return {f.name: f.metadata["flag"] for f in fields(WorkerOptions)}

    def for_runtime(self) -> dict[str, Any]:
        """The options :class:`relay.worker.Worker` takes as they are (the retry policy
        is built from ``max_attempts`` and the backoff by the caller)."""
        skip = {"max_attempts", "backoff_base", "backoff_max"}
        return {
            name: getattr(self, name)
            for name, flag in self.flags().items()
            if flag.runtime and name not in skip
        }
