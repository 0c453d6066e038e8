"""Every ``relay`` command. Thin: parse, load settings, call into the parts."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, NoReturn

import click
import orjson
from pydantic import SecretStr, ValidationError

from relay import __version__
from relay.observability import configure_logging
from relay.settings import Settings, describe_errors
from relay.streams.routes import RoutesFile

EXIT_CONFIG = 2


def _fail(lines: list[str]) -> NoReturn:
    for line in lines:
        click.echo(f"relay: configuration error: {line}", err=True)
    sys.exit(EXIT_CONFIG)


def load_settings() -> Settings:
    """Settings from the environment and ``.env``; a bad value ends the process here."""
    try:
        return Settings()
    except ValidationError as exc:
        _fail(describe_errors(exc))


@click.group()
@click.version_option(__version__, prog_name="relay")
def main() -> None:
    """AnyFormat Relay: verified webhooks in, Redis Streams out."""


@main.command()
def run() -> None:
    """Serve the webhook endpoint and the admin endpoints until SIGTERM."""
    settings = load_settings()
    if settings.self_register:
        _fail(
            [
                "RELAY_REGISTER=true: self-registration with AnyFormat is not available in "
                "this version; set RELAY_REGISTER=false and give RELAY_WEBHOOK_SECRET, or "
                "RELAY_PUBLIC_URL with a registration record stored in Redis"
            ]
        )
    configure_logging(settings.log_level, settings.log_format)
    from relay.server import serve

    asyncio.run(serve(settings))


def _shown(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, SecretStr):
        return "********"
    if isinstance(value, RoutesFile):
        return value.path
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return value


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of lines.")
def config(as_json: bool) -> None:
    """Print the effective configuration, secrets masked."""
    settings = load_settings()
    effective: dict[str, Any] = {}
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        key = alias if isinstance(alias, str) else name.upper()
        effective[key] = _shown(getattr(settings, name))
    effective["RELAY_WEBHOOK_PATH"] = settings.path
    if as_json:
        click.echo(orjson.dumps(effective, option=orjson.OPT_INDENT_2, default=str).decode())
        return
    for key, value in effective.items():
        click.echo(f"{key}={'' if value is None else value}")
