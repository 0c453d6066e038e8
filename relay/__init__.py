"""AnyFormat Relay: verified webhooks in, Redis Streams out.

Workers import their runtime from here: ``from relay import Event, Worker``. The runtime
(redis-py, Prometheus) is imported on first use, so that commands which do not run a worker,
and ``relay --version`` above all, do not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relay.version import __version__

if TYPE_CHECKING:
    from relay.worker import Event, RetryPolicy, Worker

__all__ = ["Event", "RetryPolicy", "Worker", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Event", "RetryPolicy", "Worker"):
        import relay.worker

        return getattr(relay.worker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
