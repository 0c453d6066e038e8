"""AnyFormat Relay: verified webhooks in, Redis Streams out.

Workers import everything they need from here::

    from relay import Event, Reject, Retry, RetryPolicy, Worker

and test their handlers without Redis with :mod:`relay.testing`. The runtime (redis-py,
Prometheus) is imported on first use, so that commands which do not run a worker, and
``relay --version`` above all, do not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from relay.version import __version__

if TYPE_CHECKING:
    from relay.worker import Event, Reject, Retry, RetryPolicy, Worker

__all__ = ["Event", "Reject", "Retry", "RetryPolicy", "Worker", "__version__"]
_WORKER_API = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    if name in _WORKER_API:
        import relay.worker

        return getattr(relay.worker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
