"""Every ``relay`` command. Thin: parse, load settings, call into the parts.

Each module adds its commands to the one ``main`` group; ``relay.cli.app.COMMANDS`` names the
module of each command, which is imported only when that command is used.
"""

from relay.cli.app import main

__all__ = ["main"]
