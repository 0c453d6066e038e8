"""AnyFormat Relay: verified webhooks in, Redis Streams out.

Workers import their runtime from here: ``from relay import Event, Worker``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("anyformat-relay")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

# After __version__: the worker modules read it.
from relay.worker import Event, RetryPolicy, Worker

__all__ = ["Event", "RetryPolicy", "Worker", "__version__"]
