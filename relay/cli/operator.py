"""What an operator asks of the relay from a terminal: ``relay events …`` (where is this
event, what did each group do with it), ``relay pause`` / ``relay resume`` (a group).

The answers are the operator API's own documents (relay.operator), printed as JSON with
``--json`` or as a few readable lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
import orjson

from relay.cli.app import load_settings, main, with_redis

if TYPE_CHECKING:
    from relay.settings import Settings


def known_streams(settings: Settings) -> list[str]:
    """Every stream the routes can write (where a trail can start)."""
    from relay.streams.routes import router_for

    return router_for(settings).known_streams(settings.events)


def _json(document: Any) -> None:
    click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())


@main.group()
def events() -> None:
    """Find an event by its id or its extraction id: its streams, each group's state."""


@events.command("show")
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True, help="The trail as the API answers it.")
def events_show(event_id: str, as_json: bool) -> None:
    """The trail of EVENT_ID: each stream it was written to, each group's state there."""
    from relay.operator.trail import event_trail

    settings = load_settings()
    streams = known_streams(settings)
    trail = with_redis(settings, lambda r: event_trail(r, streams, event_id))
    if trail is None:
        raise click.ClickException(
            f"no event {event_id!r} in the last RELAY_DEDUPE_TTL ({settings.dedupe_ttl} s) "
            f"of {len(streams)} stream(s)"
        )
    if as_json:
        _json(trail)
        return
    click.echo(
        f"{trail['id']}  {trail['event']}  source {trail['source']}  received "
        f"{trail['received_at']}  extraction {trail['extraction_id'] or '-'}  "
        f"duplicates {trail['duplicates']}"
    )
    for stream in trail["streams"]:
        gone = "  (trimmed)" if stream["trimmed"] else ""
        click.echo(f"{stream['stream']}  entry {stream['entry_id']}{gone}")
        if not stream["groups"]:
            click.echo("  (no consumer group)")
        for group in stream["groups"]:
            click.echo(f"  {group['group']}  {describe_state(group)}")


def describe_state(state: dict[str, Any]) -> str:
    """One group's state on one line (a replay's new entry's state after an arrow)."""
    name = state["state"]
    if name == "in_progress":
        return (
            f"in_progress  consumer {state['consumer']}  attempts {state['attempts']}  "
            f"idle {state['idle_seconds']} s"
        )
    dead = state.get("dead_letter")
    if dead is None:
        return str(name)
    text = f"{name}  dlq entry {dead['entry_id']}"
    if "error" in dead:
        text += (
            f"  attempts {dead['attempts']}  failed {dead['failed_at']}  error {dead['error']!r}"
        )
    replayed = state.get("replayed_as")
    if replayed is not None:
        text += f"  -> replayed as {replayed['entry_id']}: " + (
            describe_state(replayed) if "state" in replayed else "?"
        )
    return text


@events.command("find")
@click.option("--extraction-id", required=True, help="The extraction (run) id a customer quotes.")
@click.option("--json", "as_json", is_flag=True, help="As the API answers it.")
def events_find(extraction_id: str, as_json: bool) -> None:
    """Every event written for an extraction id, oldest first."""
    from relay.operator.trail import extraction_events

    settings = load_settings()
    streams = known_streams(settings)
    found = with_redis(settings, lambda r: extraction_events(r, streams, extraction_id))
    if as_json:
        _json(found)
        return
    if not found["events"]:
        click.echo(f"no event for extraction {extraction_id!r} in the last RELAY_DEDUPE_TTL")
        return
    for event in found["events"]:
        click.echo(f"{event['received_at']}  {event['id']}  {event['event']}")


@main.command()
@click.argument("stream")
@click.argument("group")
def pause(stream: str, group: str) -> None:
    """Pause consumer group GROUP of STREAM: its workers stop taking entries within a few
    seconds and finish what they hold (relay_worker_paused{reason="operator"})."""
    from relay.worker.pause import set_paused

    changed = with_redis(load_settings(), lambda r: set_paused(r, stream, group, True))
    if changed:
        click.echo(f"paused {group} of {stream}: its workers take no new entries within seconds")
    else:
        click.echo(f"{group} of {stream} was paused already")


@main.command()
@click.argument("stream")
@click.argument("group")
def resume(stream: str, group: str) -> None:
    """Resume consumer group GROUP of STREAM after `relay pause`."""
    from relay.worker.pause import set_paused

    changed = with_redis(load_settings(), lambda r: set_paused(r, stream, group, False))
    click.echo(f"resumed {group} of {stream}" if changed else f"{group} of {stream} was not paused")
