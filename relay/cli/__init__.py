"""Every ``relay`` command. Thin: parse, load settings, call into the parts.

Each module adds its commands to the one ``main`` group; importing them here registers them.
"""

from relay.cli import dev, reconcile, registration, serve, workers
from relay.cli.app import main
from relay.cli.workers import parse_before

__all__ = ["dev", "main", "parse_before", "reconcile", "registration", "serve", "workers"]
