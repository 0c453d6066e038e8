"""Every ``relay`` command. Thin: parse, load settings, call into the parts."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import aiohttp
import click
import orjson
from pydantic import SecretStr, ValidationError

from relay import __version__
from relay.observability import configure_logging
from relay.settings import Settings, describe_errors
from relay.streams.routes import RoutesFile

EXIT_CONFIG = 2
T = TypeVar("T")


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
    if problems := settings.serving_problems():
        _fail(problems)
    configure_logging(settings.log_level, settings.log_format)
    if settings.workers > 1 and settings.worker_index is None:
        from relay.supervisor import supervise

        sys.exit(supervise(settings.workers))
    from relay.server import FatalError, serve

    try:
        run_loop(serve(settings))
    except FatalError as exc:
        click.echo(f"relay: {exc}", err=True)
        sys.exit(1)


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop where it is installed (Linux, macOS): the event loop's own overhead is
    a large share of each request; asyncio's loop otherwise."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


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


@main.command()
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port of /healthz [default: RELAY_ADMIN_PORT].")  # fmt: skip
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
        _fail([f"{name} is required for this command" for name in missing])
    return settings


def _with_registrar(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(registrar)``; API errors end the command with their message, exit 1."""
    from relay.redis_client import redis_from_settings
    from relay.registration.client import AnyFormatClient, ApiError
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


@main.command()
def register() -> None:
    """Register RELAY_PUBLIC_URL with AnyFormat (or confirm it): what `relay run` does."""
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

        record = await registrar.load()
        listed = await with_retries(registrar.client.list_webhooks, what="list webhooks")
        rows = []
        for webhook in listed:
            if record is not None and webhook.id == record.id:
                ours = "current"
            elif record is not None and webhook.id in record.held_ids:
                ours = "retiring"
            elif webhook.url == registrar.url:
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
        _table(rows)
    else:
        click.echo("no subscriptions")


@main.command("generate-key")
def generate_key() -> None:
    """Print a new key for RELAY_SECRET_ENCRYPTION_KEY."""
    from cryptography.fernet import Fernet

    click.echo(Fernet.generate_key().decode())


# --- local development -----------------------------------------------------------------


@main.command()
def dev() -> None:
    """Run the whole loop locally: no AnyFormat account, Redis embedded if none answers."""
    import base64
    import os

    import redis as sync_redis

    from relay.dev.embedded import start_embedded_redis
    from relay.dev.state import DevState, save_state
    from relay.server import FatalError, serve

    settings = load_settings()
    secret = settings.webhook_secrets[0] if settings.webhook_secrets else None
    updates: dict[str, Any] = {"self_register": False}
    if secret is None:
        secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
        if settings.signature_scheme == "hmac-sha256":
            secret = base64.b64encode(os.urandom(24)).decode()
        updates["webhook_secret"] = SecretStr(secret)
    embedded = None
    try:
        sync_redis.Redis.from_url(settings.redis_url, socket_connect_timeout=0.5).ping()
        redis_note = f"{settings.redis_url} (answering)"
    except (sync_redis.RedisError, OSError):
        embedded = start_embedded_redis()
        updates["redis_url"] = embedded.url
        redis_note = (
            f"{embedded.url} (embedded in this process: in memory, for development only; "
            f"nothing answered at {settings.redis_url})"
        )
    settings = settings.model_copy(update=updates)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = f"http://{host}:{settings.port}{settings.path}"
    path = save_state(
        DevState(
            url=url,
            secret=secret,
            scheme=settings.signature_scheme,
            hmac_header=settings.hmac_header,
            redis_url=settings.redis_url,
        )
    )
    stream = f"{settings.stream_prefix}:events"
    click.echo(
        f"""AnyFormat Relay, development mode (registration off)
  webhook URL  {url}
  admin        http://{host}:{settings.admin_port}/readyz  /metrics
  redis        {redis_note}
  secret       {secret}   ({settings.signature_scheme}; saved for trigger/tail in {path})

Next, in another terminal:
  relay trigger extraction.completed
  relay tail {stream}
  RELAY_REDIS_URL={settings.redis_url} relay worker --stream {stream} --group dev \\
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


@main.command()
@click.argument("event", default="extraction.completed")
@click.option("--url", default=None, help="The relay's webhook URL [default: from relay dev].")
@click.option("--secret", default=None, help="Signing secret [default: from relay dev].")
@click.option("--workflow-id", default=None, help="data.workflow_id of the sample.")
def trigger(event: str, url: str | None, secret: str | None, workflow_id: str | None) -> None:
    """Send a correctly signed sample EVENT delivery to a running relay."""
    import os

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
    import os

    from relay.dev.state import load_state
    from relay.dev.tail import follow, render

    settings = load_settings()
    state = load_state()
    if "RELAY_REDIS_URL" not in os.environ and state is not None:
        settings = settings.model_copy(update={"redis_url": state.redis_url})

    async def work(redis: Any) -> None:
        seen = 0
        async for entry_id, fields in follow(redis, stream, start="0" if from_start else "$"):
            click.echo(render(entry_id, fields, as_json))
            seen += 1
            if count is not None and seen >= count:
                return

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how tail ends
        _with_redis(settings, work)


# --- workers -------------------------------------------------------------------------------


@main.command()
@click.option("--stream", required=True, help="Stream to consume.")
@click.option("--group", required=True, help="Consumer group (created when missing).")
@click.option("--handler", "handler_path", required=True, help="package.module:function")
@click.option("--consumer", default=None, help="Consumer name [default: host name + pid].")
@click.option("--concurrency", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--max-attempts", default=5, show_default=True, type=click.IntRange(min=1))
@click.option("--backoff-base", default=1.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--backoff-max", default=60.0, show_default=True, type=click.FloatRange(min=0))
@click.option(
    "--claim-idle",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds before another consumer's idle pending entry is taken over.",
)
@click.option("--shutdown-timeout", default=30.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--metrics-port", default=None, type=click.IntRange(0, 65535))
@click.option(
    "--start-id",
    default="$",
    show_default=True,
    help="Where a new group starts: $ (new entries only) or 0 (the whole stream).",
)
def worker(
    stream: str,
    group: str,
    handler_path: str,
    consumer: str | None,
    concurrency: int,
    max_attempts: int,
    backoff_base: float,
    backoff_max: float,
    claim_idle: float,
    shutdown_timeout: float,
    metrics_port: int | None,
    start_id: str,
) -> None:
    """Run an async handler for each entry of STREAM, through consumer group GROUP."""
    from relay.worker.loader import HandlerError, load_handler
    from relay.worker.process import run_worker
    from relay.worker.retry import RetryPolicy

    settings = load_settings()
    try:
        handler = load_handler(handler_path)
        retry = RetryPolicy(max_attempts, backoff_base, backoff_max)
    except (HandlerError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from None
    configure_logging(settings.log_level, settings.log_format)
    run_loop(
        run_worker(
            settings,
            handler,
            metrics_port=metrics_port,
            stream=stream,
            group=group,
            consumer=consumer,
            concurrency=concurrency,
            retry=retry,
            claim_idle=claim_idle,
            shutdown_timeout=shutdown_timeout,
            start_id=start_id,
        )
    )


def _with_redis(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    from relay.redis_client import redis_from_settings

    async def go() -> T:
        redis = redis_from_settings(settings)
        try:
            return await work(redis)
        finally:
            await redis.aclose()

    return asyncio.run(go())


def _iso(ms: str | int) -> str:
    try:
        return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).isoformat(timespec="seconds")
    except ValueError:
        return str(ms)


@main.group()
def dlq() -> None:
    """Inspect, replay and purge dead letters ({stream}:dlq)."""


@dlq.command("list")
@click.argument("stream")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
def dlq_list(stream: str, limit: int, as_json: bool) -> None:
    """The oldest dead letters of STREAM."""
    from relay.worker.deadletter import list_dead

    letters = _with_redis(load_settings(), lambda r: list_dead(r, stream, limit))
    rows = [
        {
            "dlq_id": letter.dlq_id,
            "original_id": letter.text("original_id"),
            "id": letter.text("id"),
            "event": letter.text("event"),
            "group": letter.text("group"),
            "attempts": letter.text("attempts"),
            "failed_at": _iso(letter.text("failed_at")),
            "error": letter.text("error"),
        }
        for letter in letters
    ]
    if as_json:
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    if not rows:
        click.echo(f"no dead letters in {stream}:dlq")
        return
    _table(rows, truncate={"error": 60})


@dlq.command("show")
@click.argument("stream")
@click.argument("dlq_id")
def dlq_show(stream: str, dlq_id: str) -> None:
    """Every field of one dead letter, the payload pretty-printed."""
    from relay.worker.deadletter import get_dead

    letter = _with_redis(load_settings(), lambda r: get_dead(r, stream, dlq_id))
    if letter is None:
        raise click.ClickException(f"no dead letter {dlq_id} in {stream}:dlq")
    click.echo(f"dlq_id: {letter.dlq_id}")
    for name, value in letter.fields.items():
        if name == "payload":
            continue
        text = value.decode(errors="replace")
        click.echo(f"{name}: {_iso(text) if name in ('failed_at', 'received_at') else text}")
    payload = letter.fields.get("payload", b"")
    try:
        pretty = orjson.dumps(orjson.loads(payload), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        pretty = payload.decode(errors="replace")
    click.echo("payload:")
    click.echo(pretty)


@dlq.command("replay")
@click.argument("stream")
@click.option("--id", "ids", multiple=True, help="A dead letter to replay (repeatable).")
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
def dlq_replay(stream: str, ids: tuple[str, ...], replay_all: bool) -> None:
    """Put dead letters back on STREAM, once each, and remove them from the DLQ."""
    from relay.worker.deadletter import list_dead, replay

    if bool(ids) == replay_all:
        raise click.UsageError("give --id ID (one or more) or --all")
    settings = load_settings()

    async def work(redis: Any) -> list[tuple[str, str]]:
        targets = list(ids)
        if replay_all:
            targets = [letter.dlq_id for letter in await list_dead(redis, stream, 1_000_000)]
        return [
            (dlq_id, await replay(redis, stream, dlq_id, maxlen=settings.stream_maxlen))
            for dlq_id in targets
        ]

    results = _with_redis(settings, work)
    for dlq_id, outcome in results:
        click.echo(f"{dlq_id}: {outcome}")
    replayed = sum(outcome != "absent" for _, outcome in results)
    # "absent" is not an error: a replay run twice finds its work done, which is the point.
    click.echo(f"{replayed} replayed onto {stream}, {len(results) - replayed} not found")


_DURATION = re.compile(r"(\d+)([smhd])")


def parse_before(text: str) -> int:
    """A point in time as Unix ms: ``7d``/``24h``/``30m``/``10s`` ago, Unix seconds or ms,
    or an ISO 8601 date-time (UTC unless it says otherwise)."""
    if match := _DURATION.fullmatch(text):
        seconds = int(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
        return time.time_ns() // 1_000_000 - seconds * 1000
    if text.isdigit():
        value = int(text)
        return value if value > 10**11 else value * 1000
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            "use a duration (7d, 24h, 30m), Unix seconds or ms, or an ISO 8601 date-time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@dlq.command("purge")
@click.argument("stream")
@click.option("--before", default=None, help="Only dead letters older than this (7d, ISO time).")
def dlq_purge(stream: str, before: str | None) -> None:
    """Delete dead letters of STREAM: all, or those dead-lettered before --before."""
    from relay.worker.deadletter import purge

    before_ms = parse_before(before) if before is not None else None
    removed = _with_redis(load_settings(), lambda r: purge(r, stream, before_ms))
    click.echo(f"purged {removed} dead letter(s) from {stream}:dlq")


@main.command()
@click.argument("streams", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="JSON for machines.")
def stats(streams: tuple[str, ...], as_json: bool) -> None:
    """Length, groups, consumers, pending, lag and DLQ length per stream (all by default)."""
    from relay.worker.stats import discover_streams, stream_stats

    async def work(redis: Any) -> list[Any]:
        names = list(streams) or await discover_streams(redis)
        return [await stream_stats(redis, name) for name in names]

    found = _with_redis(load_settings(), work)
    if as_json:
        document = [item.as_dict() for item in found]
        click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
        return
    rows = []
    for item in found:
        base = {"stream": item.stream, "length": item.length, "dlq": item.dlq_length}
        if not item.groups:
            rows.append({**base, "group": "-", "consumers": "", "pending": "", "lag": ""})
        for group in item.groups:
            lag = "?" if group.lag is None else group.lag
            rows.append(
                {
                    **base,
                    "group": group.name,
                    "consumers": group.consumers,
                    "pending": group.pending,
                    "lag": lag,
                }
            )
    if not rows:
        click.echo("no streams")
        return
    _table(rows)


def _clip(text: str, width: int | None) -> str:
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def _table(rows: list[dict[str, Any]], truncate: dict[str, int] | None = None) -> None:
    widths_limit = truncate or {}
    headers = list(rows[0])
    cells = [{key: _clip(str(row[key]), widths_limit.get(key)) for key in headers} for row in rows]
    widths = {key: max(len(key), *(len(cell[key]) for cell in cells)) for key in headers}
    click.echo("  ".join(key.upper().ljust(widths[key]) for key in headers).rstrip())
    for cell in cells:
        click.echo("  ".join(cell[key].ljust(widths[key]) for key in headers).rstrip())
