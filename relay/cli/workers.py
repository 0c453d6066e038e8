"""Workers and their streams: ``relay worker``, ``relay dlq …``, ``relay stats``."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import MISSING, fields
from datetime import UTC, datetime
from typing import Any

import click
import orjson

from relay.cli.app import dev_aware, iso, load_settings, main, run_loop, table, with_redis

# --- workers -------------------------------------------------------------------------------


def _with_worker_options(command: Callable[..., None]) -> Callable[..., None]:
    """One click option per field of :class:`WorkerOptions`, in its order."""
    from relay.options import WorkerOptions

    defaults = {f.name: f.default for f in fields(WorkerOptions)}
    for name, flag in reversed(WorkerOptions.flags().items()):
        default = defaults[name]
        kind: Any = None
        if flag.kind is int and (flag.minimum is not None or flag.maximum is not None):
            kind = click.IntRange(flag.minimum, flag.maximum)
        elif flag.kind is float:
            kind = click.FloatRange(flag.minimum, flag.maximum, min_open=flag.minimum_open)
        required = default is MISSING
        command = click.option(
            flag.flag,
            name,
            required=required,
            default=None if required else default,
            show_default=not required and default is not None,
            type=kind,
            help=flag.help,
        )(command)
    return command


@main.command()
@_with_worker_options
def worker(**values: Any) -> None:
    """Run an async handler for each entry of STREAM, through consumer group GROUP."""
    from relay.observability import configure_logging
    from relay.options import WorkerOptions
    from relay.worker.loader import HandlerError, load_handler, load_lifespan
    from relay.worker.process import run_worker
    from relay.worker.retry import RetryPolicy

    options = WorkerOptions(**values)
    settings = dev_aware(load_settings())
    if options.max_held is not None and options.max_held < options.concurrency:
        raise click.BadParameter("--max-held must be at least --concurrency")
    try:
        handler = load_handler(options.handler)
        lifespan = load_lifespan(options.lifespan) if options.lifespan else None
        retry = RetryPolicy(options.max_attempts, options.backoff_base, options.backoff_max)
    except (HandlerError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from None
    configure_logging(settings.log_level, settings.log_format)
    run_loop(
        run_worker(
            settings,
            handler,
            metrics_port=options.metrics_port,
            retry=retry,
            lifespan=lifespan,
            **options.for_runtime(),
        )
    )


_ENTRY_ID = re.compile(r"\d{1,20}(-\d{1,20})?")


def entry_ids(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Stream ids checked before Redis is asked: a typo is a usage error naming the
    option, not Redis's "Invalid stream ID"."""
    values = value if isinstance(value, tuple) else (value,)
    for item in values:
        if item is not None and not _ENTRY_ID.fullmatch(item):
            raise click.BadParameter(f"{item!r} is not a stream id (like 1711281750000-0)")
    return value


@main.group()
def dlq() -> None:
    """Inspect, replay and purge dead letters ({stream}:dlq)."""


@dlq.command("list")
@click.argument("stream")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1),
              help="Dead letters per page.")  # fmt: skip
@click.option("--after", default=None, metavar="DLQ_ID", callback=entry_ids,
              help="Start after this dead letter: the last id of the previous page.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True)
def dlq_list(stream: str, limit: int, after: str | None, as_json: bool) -> None:
    """The dead letters of STREAM, oldest first, a page at a time."""
    from relay.redis.keys import dlq_stream
    from relay.worker.deadletter import list_dead

    # One more than a page: whether there is a next page, without a second call.
    found = with_redis(load_settings(), lambda r: list_dead(r, stream, limit + 1, after=after))
    letters, more = found[:limit], len(found) > limit
    rows = [
        {
            "dlq_id": letter.dlq_id,
            "original_id": letter.text("original_id"),
            "id": letter.text("id"),
            "event": letter.text("event"),
            "group": letter.text("group"),
            "attempts": _count(letter.text("attempts")),
            "failed_at": iso(letter.text("failed_at")),
            "error": letter.text("error"),
        }
        for letter in letters
    ]
    if as_json:
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    if not rows:
        where = dlq_stream(stream) + (f" after {after}" if after else "")
        click.echo(f"no dead letters in {where}")
        return
    table(rows, truncate={"error": 60})
    if more:
        click.echo(f"more: relay dlq list {stream} --limit {limit} --after {rows[-1]['dlq_id']}")


def _count(text: str) -> int | str:
    """A count stored as text, as a number (``--json`` readers compare it); as stored when
    it is not one (an entry written by hand)."""
    return int(text) if text.isdigit() else text


@dlq.command("show")
@click.argument("stream")
@click.argument("dlq_id", callback=entry_ids)
def dlq_show(stream: str, dlq_id: str) -> None:
    """Every field of one dead letter, the payload pretty-printed."""
    from relay.redis.keys import dlq_stream
    from relay.worker.deadletter import get_dead

    letter = with_redis(load_settings(), lambda r: get_dead(r, stream, dlq_id))
    if letter is None:
        raise click.ClickException(f"no dead letter {dlq_id} in {dlq_stream(stream)}")
    click.echo(f"dlq_id: {letter.dlq_id}")
    for name, value in letter.fields.items():
        if name == "payload":
            continue
        text = value.decode(errors="replace")
        click.echo(f"{name}: {iso(text) if name in ('failed_at', 'received_at') else text}")
    payload = letter.fields.get("payload", b"")
    try:
        pretty = orjson.dumps(orjson.loads(payload), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        pretty = payload.decode(errors="replace")
    click.echo("payload:")
    click.echo(pretty)


def _selection_options(command: Callable[..., None]) -> Callable[..., None]:
    """The filter flags ``relay dlq replay`` and ``purge`` share (the API's filter)."""
    since = "Only those dead-lettered at or after this (7d, Unix time, ISO 8601)."
    until = "Only those dead-lettered at or before this (7d, Unix time, ISO 8601)."
    options = [
        click.option("--event", default=None, help="Only dead letters of this event."),
        click.option("--group", default=None, help="Only those this consumer group gave up on."),
        click.option("--error", default=None, help="Only those whose error has this text."),
        click.option("--since", default=None, help=since),
        click.option("--until", default=None, help=until),
        click.option("--dry-run", is_flag=True, help="Only say how many, and the first ids."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _filter_values(values: dict[str, Any], before: str | None = None) -> dict[str, Any]:
    """The filter flags given, times as Unix ms."""
    found: dict[str, Any] = {k: values[k] for k in ("event", "group", "error") if values[k]}
    for name in ("since", "until"):
        if values[name] is not None:
            found[name] = str(_moment(values[name], f"--{name}"))
    if before is not None:  # --before T: strictly older than T
        until = _moment(before, "--before") - 1
        found["until"] = str(min(until, int(found.get("until", until))))
    return found


def _moment(text: str, option: str) -> int:
    try:
        return parse_before(text)
    except click.BadParameter:
        raise click.BadParameter(
            "use a duration (7d, 24h, 30m), Unix seconds or ms, or an ISO 8601 date-time",
            param_hint=option,
        ) from None


def _run_job(stream: str, action: str, selection: Any, *, confirm: bool = False) -> Any:
    """Count, maybe ask, then run the job here, as the API's jobs run (the stream's job
    lock, the job record any relay can report, each dead letter acted on once)."""
    from relay.operator.deadletters import dry_run
    from relay.operator.jobs import JobRunning, job_status, submit
    from relay.redis.keys import dlq_stream

    async def work(redis: Any) -> Any:
        if confirm:
            matched = (await dry_run(redis, stream, selection))["matched"]
            if matched and not click.confirm(
                f"{action} {matched} dead letter(s) of {dlq_stream(stream)}?", err=True
            ):
                raise click.ClickException("nothing done")
        try:
            job = await submit(redis, stream, action, selection)  # type: ignore[arg-type]
        except JobRunning as exc:
            raise click.ClickException(
                f"job {exc.job} is running on {stream}: wait for it, or cancel it "
                f"(POST /api/jobs/{exc.job}/cancel)"
            ) from None

        def progress(counts: dict[str, int]) -> None:
            click.echo(f"job {job.id}: {counts['done']} of {job.total} done", err=True)

        state = await job.run(progress)
        return await job_status(redis, job.id), state

    status, state = with_redis(load_settings(), work)
    if state != "done":
        raise click.ClickException(
            f"job {status['job']} {state}: {status['done']} of {status['total']} done"
            + (f" ({status['error']})" if status.get("error") else "")
        )
    return status


def _dry_run(stream: str, selection: Any, verb: str) -> None:
    from relay.operator.deadletters import dry_run
    from relay.redis.keys import dlq_stream

    found = with_redis(load_settings(), lambda r: dry_run(r, stream, selection))
    click.echo(f"{found['matched']} dead letter(s) of {dlq_stream(stream)} would be {verb}")
    for dlq_id in found["sample"]:
        click.echo(f"  {dlq_id}")
    if found["matched"] > len(found["sample"]):
        click.echo(f"  … and {found['matched'] - len(found['sample'])} more")


@dlq.command("replay")
@click.argument("stream")
@click.option("--id", "ids", multiple=True, callback=entry_ids,
              help="A dead letter to replay (repeatable).")  # fmt: skip
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter.")
@_selection_options
def dlq_replay(stream: str, ids: tuple[str, ...], replay_all: bool, **values: Any) -> None:
    """Put dead letters back on STREAM, once each, and remove them from the DLQ: those
    --id names, every one (--all), or those the filters match."""
    from relay.operator.deadletters import Filter, Selection, SelectionError, check_ids

    filters = _filter_values(values)
    if sum((bool(ids), replay_all, bool(filters))) != 1:
        raise click.UsageError("give --id ID (one or more), --all, or filters (--event, …)")
    try:
        selection = (
            Selection(ids=check_ids(ids)) if ids else Selection(filter=Filter.parse(filters))
        )
    except SelectionError as exc:
        raise click.UsageError(str(exc)) from None
    if values["dry_run"]:
        _dry_run(stream, selection, "replayed")
        return
    present: set[str] = set()
    if ids:
        present = set(_present(stream, selection))
    status = _run_job(stream, "replay", selection)
    for dlq_id in ids:
        click.echo(f"{dlq_id}: {'replayed' if dlq_id in present else 'absent'}")
    # "absent" is not an error: a replay run twice finds its work done, which is the point.
    missing = len(ids) - status["done"] if ids else status["skipped"]
    click.echo(f"{status['done']} replayed onto {stream}, {missing} not found")


def _present(stream: str, selection: Any) -> list[str]:
    from relay.operator.deadletters import matching

    async def work(redis: Any) -> list[str]:
        return [dlq_id async for dlq_id in matching(redis, stream, selection)]

    return with_redis(load_settings(), work)


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
            "use a duration (7d, 24h, 30m), Unix seconds or ms, or an ISO 8601 date-time",
            param_hint="--before",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@dlq.command("purge")
@click.argument("stream")
@click.option("--before", default=None, help="Only dead letters older than this (7d, ISO time).")
@_selection_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def dlq_purge(stream: str, before: str | None, yes: bool, **values: Any) -> None:
    """Delete dead letters of STREAM: all, or those the filters (and --before) match.
    Says how many and asks first, unless --yes."""
    from relay.operator.deadletters import Filter, Selection, SelectionError
    from relay.redis.keys import dlq_stream

    try:
        selection = Selection(filter=Filter.parse(_filter_values(values, before)))
    except SelectionError as exc:
        raise click.UsageError(str(exc)) from None
    if values["dry_run"]:
        _dry_run(stream, selection, "purged")
        return
    status = _run_job(stream, "purge", selection, confirm=not yes)
    click.echo(f"purged {status['done']} dead letter(s) from {dlq_stream(stream)}")


@main.command()
@click.argument("streams", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="JSON for machines.")
def stats(streams: tuple[str, ...], as_json: bool) -> None:
    """Length, groups, consumers, pending, lag and DLQ length per stream (all by default)."""
    from relay.worker.stats import discover_streams, stream_stats

    async def work(redis: Any) -> list[Any]:
        names = list(streams) or await discover_streams(redis)
        return [await stream_stats(redis, name) for name in names]

    found = with_redis(load_settings(), work)
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
    table(rows)
