"""Local development: ``relay dev``, ``relay trigger``, ``relay tail``."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

import click

from relay.cli.app import load_settings, main, run_loop, with_redis

# --- local development -----------------------------------------------------------------


@main.command()
@click.option(
    "--embedded",
    "force_embedded",
    is_flag=True,
    help="Use the embedded in-memory Redis even when RELAY_REDIS_URL answers.",
)
def dev(force_embedded: bool) -> None:
    """Run the whole loop locally: no AnyFormat account, Redis embedded if none answers."""
    import base64
    import os
    import secrets

    from pydantic import SecretStr

    from relay.dev.embedded import start_embedded_redis
    from relay.dev.state import DevState, load_state, port_taken, save_state
    from relay.observability import configure_logging
    from relay.receiver.app import FatalError, serve
    from relay.redis.client import answers
    from relay.redis.keys import events_stream
    from relay.settings import mask_url

    settings = load_settings()
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    # Before anything is rewritten: a second `relay dev` must leave the first one's state
    # file (its secret, its Redis) as it was, or the running relay refuses `relay trigger`.
    running = load_state()
    for port in (settings.port, settings.admin_port):
        if port_taken(settings.host, port):
            who = (
                f"the relay dev already running (pid {running.pid}, {running.url})"
                if running is not None and running.running() and port in running.ports
                else "another program"
            )
            raise click.ClickException(
                f"port {port} is in use by {who}; stop it, or set RELAY_PORT and "
                "RELAY_ADMIN_PORT to run a second relay"
            )
    secret = settings.webhook_secrets[0] if settings.webhook_secrets else None
    updates: dict[str, Any] = {"self_register": False}
    if secret is None:
        secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
        if settings.signature_scheme == "hmac-sha256":
            secret = base64.b64encode(os.urandom(24)).decode()
        updates["webhook_secret"] = SecretStr(secret)
    # The console is on in development: a token made here, printed (never in a URL: a URL
    # lands in shell history and browser history), unless RELAY_ADMIN_TOKEN gives one.
    console_login = "(RELAY_ADMIN_TOKEN)"
    if settings.admin_token is None:
        console_login = secrets.token_urlsafe(24)
        updates["admin_token"] = SecretStr(console_login)
    embedded = None
    if not force_embedded and answers(settings.redis_url):
        redis_note = f"{mask_url(settings.redis_url)} (answering)"
    else:
        embedded = start_embedded_redis()
        updates["redis_url"] = embedded.url
        why = (
            "--embedded"
            if force_embedded
            else f"nothing answered at {mask_url(settings.redis_url)}"
        )
        redis_note = (
            f"{embedded.url} (embedded in this process: in memory, for development only; {why})"
        )
    settings = settings.model_copy(update=updates)
    url = f"http://{host}:{settings.port}{settings.path}"
    path = save_state(
        DevState(
            url=url,
            secret=secret,
            scheme=settings.signature_scheme,
            hmac_header=settings.hmac_header,
            redis_url=settings.redis_url,
            pid=os.getpid(),
            ports=[settings.port, settings.admin_port],
        )
    )
    stream = events_stream(settings.stream_prefix)
    click.echo(
        f"""AnyFormat Relay, development mode (registration off)
  webhook URL  {url}
  admin        http://{host}:{settings.admin_port}/readyz  /metrics
  console      http://{host}:{settings.admin_port}/console/   token {console_login}
  redis        {redis_note}
  secret       {secret}   ({settings.signature_scheme}; saved for the other commands in {path})

Next, in another terminal (each command finds this relay's Redis while it runs):
  relay trigger extraction.completed
  relay tail {stream}
  relay stats
  relay worker --stream {stream} --group dev \\
      --handler examples.billing_worker:handle --start-id 0
""",
        err=True,
    )
    configure_logging(settings.log_level, settings.log_format)
    try:
        run_loop(serve(settings))
    except FatalError as exc:
        click.echo(f"relay: {exc}", err=True)
        sys.exit(1)
    finally:
        if embedded is not None:
            embedded.stop()
        if (current := load_state()) is not None and current.pid == os.getpid():
            with contextlib.suppress(OSError):
                path.unlink()  # this relay is gone: the other commands stop using its Redis


@main.command()
@click.argument("event", default="extraction.completed")
@click.option("--url", default=None, help="The relay's webhook URL [default: from relay dev].")
@click.option("--secret", default=None, help="Signing secret [default: from relay dev].")
@click.option("--workflow-id", default=None, help="data.workflow_id of the sample.")
def trigger(event: str, url: str | None, secret: str | None, workflow_id: str | None) -> None:
    """Send a correctly signed sample EVENT delivery to a running relay."""
    import os

    import aiohttp

    from relay.dev.state import load_state
    from relay.dev.trigger import sample_body, send, signed_headers

    state = load_state()
    scheme = os.environ.get("RELAY_SIGNATURE_SCHEME", state.scheme if state else "standard")
    header = os.environ.get("RELAY_HMAC_HEADER", state.hmac_header if state else "X-Signature")
    secret = (
        secret
        or os.environ.get("RELAY_WEBHOOK_SECRET", "").split(",")[0]
        or (state.secret if state else None)
    )
    url = url or (state.url if state else "http://127.0.0.1:8080/webhooks/anyformat")
    if not secret:
        raise click.UsageError(
            "no secret: pass --secret, set RELAY_WEBHOOK_SECRET or run relay dev"
        )
    body = sample_body(event, workflow_id)
    try:
        headers = signed_headers(body, secret, scheme, header)
        status, answer = asyncio.run(send(url, body, headers))
    except ValueError as exc:
        raise click.ClickException(f"the secret {exc}") from None
    except (OSError, aiohttp.ClientError) as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from None
    click.echo(f"{status} {answer}")
    if not 200 <= status < 300:
        reason = "the relay refused the signature (wrong secret?)" if status == 401 else answer
        raise click.ClickException(f"{url} answered {status}: {reason}")


@main.command()
@click.argument("stream")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per entry.")
@click.option("--from-start", is_flag=True, help="Print the stream's existing entries first.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after N entries.")
def tail(stream: str, as_json: bool, from_start: bool, count: int | None) -> None:
    """Print the entries of STREAM as they arrive (until Ctrl-C)."""
    from relay.dev.tail import follow, render

    settings = load_settings()

    async def work(redis: Any) -> None:
        seen = 0
        async for entry_id, fields in follow(redis, stream, start="0" if from_start else "$"):
            click.echo(render(entry_id, fields, as_json))
            seen += 1
            if count is not None and seen >= count:
                return

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how tail ends
        with_redis(settings, work)
