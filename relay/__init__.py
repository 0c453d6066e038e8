"""AnyFormat Relay: verified webhooks in, Redis Streams out.

Workers import everything they need from here::

    from relay import Event, Reject, Retry, RetryPolicy, Worker

and test their handlers without Redis with :mod:`relay.testing`. The runtime (redis-py,
Prometheus) is imported on first use, so that commands which do not run a worker, and
``relay --version`` above all, do not pay for it.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:  # the one source of the version: the package metadata, from pyproject.toml
    __version__ = version("anyformat-relay")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

if TYPE_CHECKING:
    from relay.worker import Event, Reject, Retry, RetryPolicy, Worker

__all__ = ["Event", "Reject", "Retry", "RetryPolicy", "Worker", "__version__"]
_WORKER_API = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    if name in _WORKER_API:
        import relay.worker

        return getattr(relay.worker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
