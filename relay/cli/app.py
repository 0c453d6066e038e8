"""The ``relay`` command group and what its commands share: settings, loops, output."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from relay.version import __version__

if TYPE_CHECKING:
    from relay.settings import Settings

EXIT_CONFIG = 2
EXIT_FAILED = 1
# The Redis the running command talks to (set by with_redis): named in its error line.
redis_in_use: list[str] = []
T = TypeVar("T")

# Which module of relay.cli defines each command. A module is imported only when one of its
# commands runs (or `relay --help` lists them all), and the modules import what is heavy
# (aiohttp, redis, pydantic, the worker runtime) inside the commands' bodies: each command
# pays only for what it uses, and `relay --version` for none of it.
COMMANDS = {
    "run": "serve",
    "config": "serve",
    "healthcheck": "serve",
    "dev": "dev",
    "trigger": "dev",
    "tail": "dev",
    "register": "registration",
    "unregister": "registration",
    "rotate-secret": "registration",
    "webhooks": "registration",
    "generate-key": "registration",
    "reconcile": "reconcile",
    "worker": "workers",
    "dlq": "workers",
    "stats": "workers",
    "schema": "interface",
    "asyncapi": "interface",
    "events": "operator",
    "pause": "operator",
    "resume": "operator",
}


def fail(lines: list[str]) -> NoReturn:
    for line in lines:
        click.echo(f"relay: configuration error: {line}", err=True)
    sys.exit(EXIT_CONFIG)


def load_settings() -> Settings:
    """Settings from the environment and ``.env``; a bad value ends the process here."""
    from pydantic import ValidationError

    from relay.settings import Settings, describe_errors

    try:
        settings = Settings()
    except ValidationError as exc:
        fail(describe_errors(exc))
    if settings.routes_file is not None:
        from relay.streams.routes import load_routes_file

        try:
            load_routes_file(settings.routes_file)
        except ValueError as exc:
            fail([f"RELAY_ROUTES_FILE: {exc}"])
    warn_misspelt(settings)
    return settings


def warn_misspelt(settings: Settings) -> None:
    """A typo (``RELAY_PORTT``) leaves a default in force silently: say so, once per process
    tree (serving processes started by ``relay run`` do not repeat it)."""
    import os

    from relay.settings_typos import warnings_for

    if settings.worker_index is not None:
        return
    for line in warnings_for(os.environ):
        click.echo(f"relay: warning: {line}", err=True)


class LazyGroup(click.Group):
    """A group whose commands are imported from their module (``COMMANDS``) when needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            # Importing the module registers its commands on `main` (their decorators).
            importlib.import_module(f"relay.cli.{COMMANDS[cmd_name]}")
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        """Every failure a command meets ends as one line (``relay.cli.errors``)."""
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            import os

            if os.environ.get("RELAY_LOG_LEVEL", "").lower() == "debug":
                raise
            from relay.cli.errors import describe

            click.echo(
                f"relay: {describe(exc, redis_in_use[-1] if redis_in_use else None)}", err=True
            )
            sys.exit(EXIT_FAILED)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="relay")
def main() -> None:
    """AnyFormat Relay: verified webhooks in, Redis Streams out."""


def start_observability(settings: Settings, service: str) -> None:
    """Tracing from the ``OTEL_*`` variables, then logging (which joins log lines to
    traces when tracing is on); says once whether tracing is on, and why not when an
    endpoint was set but cannot be used."""
    from relay.observability import configure_logging
    from relay.tracing import configure

    tracing, reason = configure(service)
    configure_logging(settings.log_level, settings.log_format)
    import structlog

    log = structlog.get_logger("relay.tracing")
    if tracing.enabled:
        log.info("tracing_on", service=service)
    elif reason is not None and reason != "no_endpoint":
        log.warning("tracing_off", reason=reason)


def run_loop(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop where it is installed (Linux, macOS): the event loop's own overhead is
    a large share of each request; asyncio's loop otherwise."""
    try:
        import uvloop
    except ImportError:
        import asyncio

        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)


def dev_aware(settings: Settings) -> Settings:
    """The settings with the Redis of a running ``relay dev`` when none is configured, so
    that a new terminal's ``relay stats`` reads what ``relay dev`` writes (as ``tail`` and
    ``trigger`` do); said on stderr, since it is not the configured Redis."""
    if "redis_url" in settings.model_fields_set or settings.redis_sentinels:
        return settings
    from relay.dev.state import load_state, state_path
    from relay.settings import mask_url

    state = load_state()
    if state is None or not state.running() or state.redis_url == settings.redis_url:
        return settings
    click.echo(
        f"relay: using the Redis of the running relay dev (pid {state.pid}): "
        f"{mask_url(state.redis_url)} (RELAY_REDIS_URL is unset; from {state_path()})",
        err=True,
    )
    return settings.model_copy(update={"redis_url": state.redis_url, "redis_cluster": False})


def with_redis(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    import asyncio

    from relay.redis.client import redis_from_settings

    settings = dev_aware(settings)

    redis_in_use.append(settings.redis_url)

    async def go() -> T:
        redis = redis_from_settings(settings)
        try:
            return await work(redis)
        finally:
            await redis.aclose()

    return asyncio.run(go())


def iso(ms: str | int) -> str:
    try:
        return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).isoformat(timespec="seconds")
    except ValueError:
        return str(ms)


def clip(text: str, width: int | None) -> str:
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def table(rows: list[dict[str, Any]], truncate: dict[str, int] | None = None) -> None:
    widths_limit = truncate or {}
    headers = list(rows[0])
    cells = [{key: clip(str(row[key]), widths_limit.get(key)) for key in headers} for row in rows]
    widths = {key: max(len(key), *(len(cell[key]) for cell in cells)) for key in headers}
    click.echo("  ".join(key.upper().ljust(widths[key]) for key in headers).rstrip())
    for cell in cells:
        click.echo("  ".join(cell[key].ljust(widths[key]) for key in headers).rstrip())
