"""Registration by hand: register, unregister, rotate-secret, webhooks list, generate-key."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import click
import orjson

from relay.cli.app import T, fail, load_settings, main, table

if TYPE_CHECKING:
    from relay.settings import Settings

# --- registration --------------------------------------------------------------------------


def _registration_settings() -> Settings:
    settings = load_settings()
    missing = [
        name
        for name, value in (
            ("ANYFORMAT_API_KEY", settings.anyformat_api_key),
            ("RELAY_PUBLIC_URL", settings.public_url),
        )
        if value is None
    ]
    if missing:
        fail([f"{name} is required for this command" for name in missing])
    return settings


def _with_registrar(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(registrar)``; API errors end the command with their message, exit 1."""
    from relay.observability import configure_logging
    from relay.redis.client import redis_from_settings
    from relay.redis.errors import RedisError
    from relay.registration.client import AnyFormatClient, ApiError
    from relay.registration.lock import LockLost
    from relay.registration.record import SecretCodec, SecretUnreadable
    from relay.registration.registrar import Registrar

    settings = _registration_settings()
    api_key, public_url = settings.anyformat_api_key, settings.public_url
    assert api_key is not None and public_url is not None
    configure_logging(settings.log_level, "console", sys.stderr)

    async def go() -> T:
        redis = redis_from_settings(settings)
        try:
            async with AnyFormatClient(settings.anyformat_base_url, api_key) as api:
                registrar = Registrar(
                    redis,
                    api,
                    prefix=settings.stream_prefix,
                    public_url=public_url,
                    events=settings.events,
                    codec=SecretCodec(settings.secret_encryption_key),
                )
                return await work(registrar)
        finally:
            await redis.aclose()

    try:
        return asyncio.run(go())
    except (ApiError, SecretUnreadable) as exc:
        raise click.ClickException(str(exc)) from None
    except RedisError as exc:  # its message may name the URL: only the kind is shown
        raise click.ClickException(f"Redis is unreachable ({type(exc).__name__})") from None
    except LockLost:
        raise click.ClickException(
            "another relay took the registration lock over meanwhile: run the command again"
        ) from None


@main.command()
def register() -> None:
    """Register RELAY_PUBLIC_URL with AnyFormat (or confirm it): what `relay run` does."""
    from relay.reserved_domains import reserved_domain

    if domain := reserved_domain(_registration_settings().public_url or ""):
        fail(
            [f"RELAY_PUBLIC_URL is on the reserved domain {domain}: AnyFormat cannot deliver there"]
        )
    record = _with_registrar(lambda registrar: registrar.ensure())
    click.echo(f"registered {record.url} as {record.id} (events: {','.join(record.events)})")


@main.command()
def unregister() -> None:
    """Delete our AnyFormat subscription(s) for RELAY_PUBLIC_URL and the stored record."""
    deleted = _with_registrar(lambda registrar: registrar.unregister())
    if not deleted:
        click.echo("nothing registered for this URL")
    for webhook_id in deleted:
        click.echo(f"deleted {webhook_id}")


@main.command("rotate-secret")
@click.option(
    "--grace",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds the old subscription (and its secret) stays before it is deleted.",
)
@click.option("--now", is_flag=True, help="Delete the old subscription at once.")
def rotate_secret(grace: float, now: bool) -> None:
    """Create a new subscription and secret; retire the old one after --grace seconds.

    Every running relay accepts both secrets within seconds; events delivered to both
    subscriptions meanwhile become one stream entry. Running relays delete the old
    subscription when the grace period is over.
    """
    record, old_id = _with_registrar(lambda registrar: registrar.rotate(None if now else grace))
    click.echo(f"new subscription {record.id} for {record.url}")
    if now:
        click.echo(f"deleted {old_id}")
    else:
        click.echo(f"{old_id} stays accepted for {grace:g} s, then running relays delete it")


@main.group()
def webhooks() -> None:
    """The organisation's AnyFormat subscriptions."""


@webhooks.command("list")
@click.option("--json", "as_json", is_flag=True)
def webhooks_list(as_json: bool) -> None:
    """Every subscription of the organisation; ours marked."""

    async def work(registrar: Any) -> list[dict[str, Any]]:
        from relay.registration.client import with_retries
        from relay.registration.urls import same_url

        record = await registrar.load()
        listed = await with_retries(registrar.client.list_webhooks, what="list webhooks")
        rows = []
        for webhook in listed:
            if record is not None and webhook.id == record.id:
                ours = "current"
            elif record is not None and webhook.id in record.held_ids:
                ours = "retiring"
            elif same_url(webhook.url, registrar.url):
                ours = "orphan"  # our URL, a secret we do not hold
            else:
                ours = ""
            rows.append(
                {"id": webhook.id, "url": webhook.url, "events": ",".join(webhook.events),
                 "active": webhook.is_active, "created_at": webhook.created_at, "ours": ours}
            )  # fmt: skip
        return rows

    rows = _with_registrar(work)
    if as_json:
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
    elif rows:
        table(rows)
    else:
        click.echo("no subscriptions")


@main.command("generate-key")
def generate_key() -> None:
    """Print a new key for RELAY_SECRET_ENCRYPTION_KEY."""
    from cryptography.fernet import Fernet

    click.echo(Fernet.generate_key().decode())
