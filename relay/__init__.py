"""AnyFormat Relay: verified webhooks in, Redis Streams out."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("anyformat-relay")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
