"""The relay's version, in a leaf that imports nothing of the package: the Redis client's
name, the receiver's pages and the registration client's User-Agent read it without pulling
in the package root (which reaches the worker runtime)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:  # the one source of the version: the package metadata, from pyproject.toml
    __version__ = version("anyformat-relay")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
