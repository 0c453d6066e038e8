"""``relay reconcile``: recover, by hand, the events whose webhooks never arrived."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime

import click

from relay.cli.app import fail, load_settings, main


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="seconds")


@main.command()
@click.option(
    "--since",
    default=None,
    help="How far back: a duration (90s, 30m, 6h, 2d) or an ISO 8601 time "
    "[default: two RELAY_RECONCILE_INTERVALs].",
)
@click.option("--dry-run", is_flag=True, help="Print what would be written; write nothing.")
def reconcile(since: str | None, dry_run: bool) -> None:
    """Write the events of runs that finished since --since and are missing from the streams.

    Lists every workflow's runs through the AnyFormat API (ANYFORMAT_API_KEY), as the
    running relays do after a gap and every RELAY_RECONCILE_INTERVAL. Events already in a
    stream are skipped there, so running it twice writes nothing new.
    """
    from relay.observability import configure_logging
    from relay.reconcile.metrics import ReconcileMetrics
    from relay.reconcile.reconciler import Busy, Reconciler
    from relay.reconcile.sweep import Recovered, SweepResult
    from relay.reconcile.window import Window, parse_since
    from relay.redis.client import redis_from_settings
    from relay.redis.errors import RedisError
    from relay.registration.client import ApiError
    from relay.streams.routes import router_for
    from relay.streams.writer import FanoutWriter

    settings = load_settings()
    if settings.anyformat_api_key is None:
        fail(["ANYFORMAT_API_KEY is required for this command"])
    configure_logging(settings.log_level, "console", sys.stderr)
    now = time.time()
    try:
        start = parse_since(since, now) if since else now - 2 * settings.reconcile_interval
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    window = Window.bounded(start, now, settings.reconcile_lookback)
    if window.clamped:
        click.echo(
            "--since is further back than RELAY_RECONCILE_MAX_LOOKBACK (or RELAY_DEDUPE_TTL): "
            f"from {_when(window.since)}"
        )
    verb = "would write" if dry_run else "wrote"

    def show(recovered: Recovered) -> None:
        entry = recovered.entry
        click.echo(
            f"{verb} {entry.id} {entry.event} workflow={entry.workflow_id} "
            f"streams={','.join(recovered.streams)}"
        )

    async def go() -> SweepResult:
        redis = redis_from_settings(settings)
        reconciler = Reconciler.from_settings(
            settings,
            redis=redis,
            writer=FanoutWriter(redis, dedupe_ttl=settings.dedupe_ttl),
            router=router_for(settings),
            metrics=ReconcileMetrics(),
        )
        try:
            return await reconciler.sweep_now(window, dry_run=dry_run, on_recovered=show)
        finally:
            await reconciler.close()
            await redis.aclose()

    try:
        result = asyncio.run(go())
    except Busy:
        raise click.ClickException(
            "another relay is reconciling right now; try again once it is done"
        ) from None
    except ApiError as exc:
        raise click.ClickException(str(exc)) from None
    except RedisError as exc:
        raise click.ClickException(f"Redis: {type(exc).__name__}") from None
    click.echo(
        f"{verb} {len(result.recovered)} event(s), {result.present} already present; "
        f"{result.runs_seen} run(s) read in {result.workflows} workflow(s) with "
        f"{result.api_calls} API call(s); window {_when(window.since)} "
        f"to {_when(window.until)}"
    )
