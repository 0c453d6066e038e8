"""What the relay and the workers ask of tracing, and the "off" answer to all of it.

Nothing here imports OpenTelemetry: with tracing off (the default) the delivery path calls
only :class:`NoTracing`, whose answers do nothing. ``relay.tracing.otel`` is the "on" side.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

Processor = Any  # a structlog processor


class Sends(Protocol):
    """The ``send {stream}`` spans of one write, one per stream, started before it."""

    # Per stream, the fields its entry carries: the span's ``traceparent`` (and
    # ``tracestate``), as name/value items of equal length for every stream.
    fields: Sequence[Sequence[bytes]]

    def written(self, ids: Sequence[str | None]) -> None:
        """End the spans of the streams written (``None``: already there, no span)."""

    def failed(self, exc: BaseException) -> None:
        """End every span as failed: the write raised."""


class EntryTrace(Protocol):
    """A worker's spans for one entry: a ``process {stream}`` span per attempt."""

    def attempt(self, attempt: int) -> AbstractContextManager[None]:
        """Start the attempt's span and make it current while the handler runs; it stays
        open until ``settle`` (the outcome is known only after the handler)."""

    def failed(self, exc: BaseException | None) -> None:
        """The open attempt failed: record ``exc`` as the span's exception event."""

    def settle(self, outcome: str) -> None:
        """End the open attempt's span with ``relay.outcome`` = ``outcome``."""

    def dead_letter(self, stream: str, attempt: int) -> AbstractContextManager[Sends]:
        """The ``send {stream}:dlq`` span of a dead-letter move, current while it runs,
        child of the open attempt (one is opened when none ran: a malformed entry)."""


class Tracing(Protocol):
    enabled: bool

    def delivery(
        self, method: str, path: str, headers: Mapping[str, str], fields: MutableMapping[str, Any]
    ) -> AbstractContextManager[None]:
        """The SERVER span of one delivery, current while it is handled; ``fields`` (the
        delivery's log line) gets ``trace_id``/``span_id``; read at the end for the
        outcome, status and client address."""

    def sends(self, streams: Sequence[str]) -> Sends:
        """Start a ``send {stream}`` span per stream, children of the current span."""

    def entry(
        self, stream: str, group: str, entry_id: str, fields: Mapping[str, bytes]
    ) -> EntryTrace:
        """The spans of one entry a worker handles, children of its ``traceparent``."""

    def replay(self, stream: str, fields: Mapping[str, bytes]) -> AbstractContextManager[Sends]:
        """The ``send {stream}`` span of a replay: a new trace linked to the dead letter's."""

    def sweep(self) -> AbstractContextManager[None]:
        """The INTERNAL span of a reconciliation sweep, parent of what it writes."""

    def log_processor(self) -> Processor | None:
        """A structlog processor adding ``trace_id``/``span_id`` inside a span."""

    def shutdown(self) -> None:
        """Export what is buffered (at exit)."""


class _NoSends:
    fields: Sequence[Sequence[bytes]] = ()

    def written(self, ids: Sequence[str | None]) -> None:
        pass

    def failed(self, exc: BaseException) -> None:
        pass


NO_SENDS = _NoSends()


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield None


@contextlib.contextmanager
def _no_sends() -> Iterator[Sends]:
    yield NO_SENDS


class _NoEntryTrace:
    def attempt(self, attempt: int) -> AbstractContextManager[None]:
        return _nothing()

    def failed(self, exc: BaseException | None) -> None:
        pass

    def settle(self, outcome: str) -> None:
        pass

    def dead_letter(self, stream: str, attempt: int) -> AbstractContextManager[Sends]:
        return _no_sends()


NO_ENTRY_TRACE = _NoEntryTrace()


class NoTracing:
    """Tracing off: every answer does nothing, and nothing of OpenTelemetry is imported."""

    enabled = False

    def delivery(
        self, method: str, path: str, headers: Mapping[str, str], fields: MutableMapping[str, Any]
    ) -> AbstractContextManager[None]:
        return _nothing()

    def sends(self, streams: Sequence[str]) -> Sends:
        return NO_SENDS

    def entry(
        self, stream: str, group: str, entry_id: str, fields: Mapping[str, bytes]
    ) -> EntryTrace:
        return NO_ENTRY_TRACE

    def replay(self, stream: str, fields: Mapping[str, bytes]) -> AbstractContextManager[Sends]:
        return _no_sends()

    def sweep(self) -> AbstractContextManager[None]:
        return _nothing()

    def log_processor(self) -> Processor | None:
        return None

    def shutdown(self) -> None:
        pass
