"""Serving: ``relay run``, ``relay config``, ``relay healthcheck``."""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson

from relay.cli.app import fail, load_settings, main, run_loop


@main.command()
def run() -> None:
    """Serve the webhook endpoint and the admin endpoints until SIGTERM."""
    settings = load_settings()
    if problems := settings.serving_problems():
        fail(problems)
    from relay.observability import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    if settings.workers > 1 and settings.worker_index is None:
        from relay.supervisor import supervise

        sys.exit(supervise(settings.workers))
    from relay.receiver.app import FatalError, serve

    try:
        run_loop(serve(settings))
    except FatalError as exc:
        click.echo(f"relay: {exc}", err=True)
        sys.exit(1)


def _shown(value: Any) -> Any:
    """A setting as ``relay config`` prints it: secrets and the passwords of URLs masked."""
    from pydantic import SecretStr

    from relay.settings import mask_url

    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, SecretStr):
        return "********"
    if isinstance(value, list):
        return ",".join(mask_url(str(item)) for item in value)
    if isinstance(value, str):
        return mask_url(value)
    return value


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of lines.")
def config(as_json: bool) -> None:
    """Print the effective configuration, secrets masked."""
    from relay.settings import Settings

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


@main.command()
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              envvar="RELAY_HEALTHCHECK_PORT", show_envvar=True,
              help="Port of /healthz: a worker's --metrics-port "
                   "[default: RELAY_ADMIN_PORT].")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True)
def healthcheck(port: int | None, host: str) -> None:
    """Exit 0 when /healthz answers 200 (the container's HEALTHCHECK; needs no curl)."""
    import urllib.error
    import urllib.request

    if port is None:
        port = load_settings().admin_port
    url = f"http://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            status = response.status
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(f"{url}: {exc}") from None
    if status != 200:
        raise click.ClickException(f"{url} answered {status}")
    click.echo("ok")
