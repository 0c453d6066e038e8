"""Each command imports only what it uses: `relay --version` pays for none of the parts."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

import relay
from relay.cli import main
from relay.cli.app import COMMANDS

HEAVY = ("aiohttp", "redis", "pydantic", "pydantic_settings", "structlog", "prometheus_client",
         "relay.worker", "relay.settings", "relay.receiver", "asyncio")  # fmt: skip


# Runs `python -m relay ARGV` and prints, at exit, every module the process had imported.
PROBE = """
import atexit, runpy, sys
atexit.register(lambda: print("\\n".join(sys.modules), file=sys.stderr))
sys.argv = ["relay", *sys.argv[1:]]
runpy.run_module("relay", run_name="__main__")
"""


def modules_imported_by(*argv: str) -> set[str]:
    """The modules a fresh `python -m relay ARGV` imports."""
    root = Path(relay.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    return set(done.stderr.split())


def test_version_imports_none_of_the_heavy_parts() -> None:
    imported = modules_imported_by("--version")
    assert "relay.cli.app" in imported  # the measurement sees our modules at all
    heavy = sorted(m for m in imported if m.startswith(HEAVY))
    assert heavy == []


def test_help_of_a_worker_command_does_not_import_the_worker_runtime() -> None:
    imported = modules_imported_by("dlq", "--help")
    assert "relay.cli.workers" in imported
    assert not any(m.startswith(("relay.worker", "aiohttp", "redis")) for m in imported)


def test_every_command_module_is_named_in_the_command_table() -> None:
    """A command defined in relay/cli but missing from COMMANDS would be unreachable."""
    for path in Path(relay.__file__).parent.joinpath("cli").glob("*.py"):
        importlib.import_module(f"relay.cli.{path.stem}")
    defined = {name: command.callback.__module__ if command.callback else "" for name, command
               in main.commands.items()}  # fmt: skip
    assert sorted(defined) == sorted(COMMANDS)
    for name, module in defined.items():
        if isinstance(main.commands[name], click.Group):
            continue  # a group's callback may live in its module too; checked via its commands
        assert module == f"relay.cli.{COMMANDS[name]}", name


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in result.output or f"  {name}\n" in result.output, name


def test_version_is_the_package_metadata() -> None:
    from importlib.metadata import version

    result = CliRunner().invoke(main, ["--version"])
    assert result.output == f"relay, version {version('anyformat-relay')}\n"


def test_the_worker_runtime_stays_importable_from_the_package() -> None:
    from relay import Event, RetryPolicy, Worker
    from relay.worker import Event as WorkerEvent

    assert Event is WorkerEvent and Worker.__name__ == "Worker" and RetryPolicy.__name__
