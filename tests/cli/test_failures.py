"""Every command, on every failure a user can cause or meet, prints one line: no traceback.

The commands are read from the parser (``relay --help``'s tree), not listed here, so that a
command added later is walked too. Each runs against a Redis that does not answer.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

import relay
from relay.cli import main
from tests.support.redis_server import free_port
from tests.support.waiting import wait_for_sync

pytestmark = pytest.mark.process
ROOT = Path(relay.__file__).resolve().parents[1]
# Values for required parameters, by parameter name; anything else gets "x".
PLACEHOLDERS = {
    "stream": "anyformat:events",
    "streams": "anyformat:events",
    "group": "g",
    "handler_path": "examples.billing_worker:handle",
    "dlq_id": "1711281750000-0",
}
# What a command that serves (and waits for Redis, as it must) prints once it is waiting.
WAITING = ("redis_unavailable", "redis_error", "relay_started")


def leaves(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            yield from leaves(command, (*prefix, name))
        else:
            yield (*prefix, name, *required_args(command))


def required_args(command: click.Command) -> list[str]:
    argv: list[str] = []
    for param in command.params:
        if not param.required:
            continue
        value = PLACEHOLDERS.get(param.name or "", "x")
        if isinstance(param, click.Option):
            argv += [param.opts[0], value]
        else:
            argv.append(value)
    return argv


COMMANDS = sorted(leaves(main))


def environment(home: Path, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RELAY_", "ANYFORMAT_"))}
    return {
        **clean,
        "PYTHONPATH": str(ROOT),
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "RELAY_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # nothing answers
        "RELAY_HOST": "127.0.0.1",
        "RELAY_PORT": str(free_port()),
        "RELAY_ADMIN_PORT": str(free_port()),
        "ANYFORMAT_API_KEY": "af_test_key",
        "ANYFORMAT_BASE_URL": f"http://127.0.0.1:{free_port()}",
        "RELAY_PUBLIC_URL": "https://relay.anyformat-relay-tests.net/webhooks/anyformat",
        "RELAY_WEBHOOK_SECRET": "whsec_c2VjcmV0LWZvci10aGUtd2Fsay10ZXN0",
        **extra,
    }


def run(
    argv: tuple[str, ...], env: dict[str, str], home: Path, waiting: tuple[str, ...] = WAITING
) -> tuple[int | None, str, str]:
    """(exit code, stdout, stderr); a command still serving once it says it is waiting for
    Redis (or serving) is stopped with SIGTERM and its code is None."""
    out, err = home / "out", home / "err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "relay", *argv], env=env,
                                   stdout=stdout, stderr=stderr, cwd=home)  # fmt: skip

    def outcome() -> str | None:
        if process.poll() is not None:
            return "ended"
        said = out.read_text(errors="replace") + err.read_text(errors="replace")
        return "waiting" if any(marker in said for marker in waiting) else None

    code: int | None = None
    try:
        what = f"relay {' '.join(argv)} to end or to wait"
        if wait_for_sync(outcome, what=what, within=60) == "ended":
            code = process.returncode
        else:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return code, out.read_text(errors="replace"), err.read_text(errors="replace")


def assert_one_line(code: int | None, stdout: str, stderr: str) -> str:
    """No traceback; a failure ends with one line saying what went wrong. The line."""
    assert "Traceback" not in stdout + stderr, stdout + stderr
    if code is None or code == 0:
        return ""
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(("relay: ", "Error: ")), stderr
    return last


def test_the_walk_covers_every_command() -> None:
    names = {argv[0] for argv in COMMANDS}
    assert {"stats", "tail", "dlq", "run", "dev", "worker"} <= names
    assert len(COMMANDS) >= 15


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: " ".join(argv[:2]))
def test_every_command_against_an_unreachable_redis(argv: tuple[str, ...], tmp_path: Path) -> None:
    code, stdout, stderr = run(argv, environment(tmp_path), tmp_path)
    line = assert_one_line(code, stdout, stderr)
    if "Redis" in line:
        assert "cannot reach Redis" in line or "Redis is unreachable" in line or "Redis:" in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("dlq", "show", "anyformat:events", "garbage"), "'garbage' is not a stream id"),
        (("dlq", "replay", "anyformat:events", "--id", "bogus"), "'bogus' is not a stream id"),
        (("dlq", "list", "anyformat:events", "--after", "nope"), "'nope' is not a stream id"),
        (("stats",), "cannot reach Redis at redis://127.0.0.1:"),
        (("dlq", "show", "anyformat:events", "1-0"), "cannot reach Redis at redis://127.0.0.1:"),
        (("tail", "anyformat:events"), "cannot reach Redis at redis://127.0.0.1:"),
    ],
)
def test_bad_ids_and_no_redis_are_one_line(
    argv: tuple[str, ...], expected: str, tmp_path: Path
) -> None:
    code, stdout, stderr = run(argv, environment(tmp_path), tmp_path)
    assert code is not None and code != 0
    assert expected in assert_one_line(code, stdout, stderr)


def test_a_password_in_the_redis_url_is_not_printed(tmp_path: Path) -> None:
    url = f"redis://user:hunter2secret@127.0.0.1:{free_port()}/0"
    code, stdout, stderr = run(("stats",), environment(tmp_path, RELAY_REDIS_URL=url), tmp_path)
    line = assert_one_line(code, stdout, stderr)
    assert "user:***@127.0.0.1" in line and "hunter2secret" not in stdout + stderr


@pytest.mark.parametrize("command", ["run", "dev"])
def test_a_busy_port_is_one_line(command: str, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = environment(tmp_path, RELAY_PORT=str(port), RELAY_REGISTER="false")
        # Not stopped once waiting for Redis: the bind that fails comes after.
        code, stdout, stderr = run((command,), env, tmp_path, waiting=())
    line = assert_one_line(code, stdout, stderr)
    assert code == 1 and str(port) in line and "in use" in line


@pytest.mark.parametrize(
    ("extra", "argv", "expected"),
    [
        ({"RELAY_ROUTES_FILE": "/nonexistent/routes.yaml"}, ("stats",), "RELAY_ROUTES_FILE"),
        ({"RELAY_PORT": "eighty"}, ("run",), "RELAY_PORT"),
        ({}, ("worker", "--stream", "s", "--group", "g", "--handler", "no.such:mod"), "no.such"),
        ({}, ("dlq", "purge", "s", "--before", "someday"), "--before"),
    ],
)
def test_a_missing_file_or_a_bad_value_is_one_line(
    extra: dict[str, str], argv: tuple[str, ...], expected: str, tmp_path: Path
) -> None:
    code, stdout, stderr = run(argv, environment(tmp_path, **extra), tmp_path)
    assert code is not None and code != 0
    assert expected in assert_one_line(code, stdout, stderr)


def test_an_invalid_routes_file_names_the_variable_and_the_place(tmp_path: Path) -> None:
    """Parsed at start-up by every command, routing or not, as the settings are read."""
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes:\n  - event: x\n    streams: 5\n")
    env = environment(tmp_path, RELAY_ROUTES_FILE=str(routes))
    code, stdout, stderr = run(("stats",), env, tmp_path)
    line = assert_one_line(code, stdout, stderr)
    assert line.startswith(f"relay: configuration error: RELAY_ROUTES_FILE: {routes}: routes.0.")
    routes.write_text("routes:\n  - event: x\n    streams: [s]\n")
    code, stdout, stderr = run(("config",), env, tmp_path)
    assert code == 0 and f"RELAY_ROUTES_FILE={routes}" in stdout


def test_a_command_that_works_still_works(tmp_path: Path) -> None:
    code, stdout, stderr = run(("config",), environment(tmp_path), tmp_path)
    assert code == 0 and "RELAY_REDIS_URL=" in stdout and stderr == ""


def test_healthcheck_reads_its_port_from_the_environment(tmp_path: Path) -> None:
    port = free_port()
    env = environment(tmp_path, RELAY_HEALTHCHECK_PORT=str(port))
    code, stdout, stderr = run(("healthcheck",), env, tmp_path)
    assert code == 1 and f"http://127.0.0.1:{port}/healthz" in assert_one_line(code, stdout, stderr)
    assert "warning" not in stderr  # a known variable, not a typo
