"""Tracing (OpenTelemetry), behind one boundary: :func:`tracer`.

On only when the ``[otel]`` extra is installed, an OTLP endpoint is set
(``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``) and
``OTEL_SDK_DISABLED`` is not true; set up from the standard ``OTEL_*`` variables only.
Off, :func:`tracer` answers :class:`NoTracing` and nothing of OpenTelemetry is imported:
the delivery path pays one attribute check.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Mapping

from relay.tracing.base import EntryTrace, NoTracing, Sends, Tracing

__all__ = [
    "EntryTrace", "NoTracing", "Sends", "Tracing", "configure", "own_fields", "tracer", "why_off",
]  # fmt: skip

ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
EXTRA = ("opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http")
PROTOCOL = "http/protobuf"  # the one exporter the extra installs
DEFAULT_SERVICE = "anyformat-relay"

_current: Tracing | None = None


def own_fields(sends: Sends, stream: int = 0) -> dict[str, bytes]:
    """The fields ``sends`` gives the entry of its ``stream``-th stream, as a mapping
    (nothing with tracing off)."""
    if not sends.fields:
        return {}
    items = sends.fields[stream]
    return {items[i].decode(): items[i + 1] for i in range(0, len(items), 2)}


def why_off(environ: Mapping[str, str]) -> str | None:
    """Why tracing is off with these variables (``None``: on). Imports nothing."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "OTEL_SDK_DISABLED"
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return "OTEL_TRACES_EXPORTER=none"
    if not any(environ.get(name, "").strip() for name in ENDPOINTS):
        return "no_endpoint"
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or PROTOCOL
    ).strip()
    if protocol != PROTOCOL:
        return f"protocol_unsupported: {protocol} (the relay exports {PROTOCOL})"
    for dist in EXTRA:
        try:
            importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError:
            return "extra_missing: pip install 'anyformat-relay[otel]'"
    return None


def configure(service: str = DEFAULT_SERVICE) -> tuple[Tracing, str | None]:
    """Set this process's tracing up from its environment (once; later calls answer the
    first's): the tracing, and why it is off (``None``: on). ``service`` is the
    ``service.name`` unless ``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES`` name one."""
    global _current
    reason = why_off(os.environ)
    if _current is None:
        if reason is None:
            from relay.tracing.otel import OtelTracing

            _current = OtelTracing.from_environment(service)
        else:
            _current = NoTracing()
    return _current, reason


def tracer() -> Tracing:
    """This process's tracing (set up from the environment on first use)."""
    return _current if _current is not None else configure()[0]


def reset() -> None:
    """Forget this process's tracing (tests: set up again from a changed environment)."""
    global _current
    if _current is not None:
        _current.shutdown()
    _current = None
