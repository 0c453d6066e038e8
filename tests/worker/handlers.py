"""Handlers for the worker processes these tests start (``--handler tests.worker.handlers:…``)."""

from __future__ import annotations

from relay import Event


async def failing(event: Event) -> None:
    """A dependency that refuses every call."""
    raise ConnectionError("billing API unreachable")
