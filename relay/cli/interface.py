"""The streams as an interface: ``relay schema`` (JSON Schema) and ``relay asyncapi``."""

from __future__ import annotations

import click

from relay.cli.app import main


@main.command()
@click.argument("name", required=False)
@click.option("--list", "list_names", is_flag=True, help="List the schemas' names.")
def schema(name: str | None, list_names: bool) -> None:
    """Print the JSON Schema (2020-12) of NAME: stream-entry, dlq-entry,
    extraction.completed or extraction.failed (all of them, keyed by name, without NAME)."""
    import json

    from relay.schemas import NAMES, load, text

    if list_names:
        width = max(map(len, NAMES))
        for known, about in NAMES.items():
            click.echo(f"{known.ljust(width)}  {about}")
        return
    if name is None:
        click.echo(json.dumps({known: load(known) for known in NAMES}, indent=2))
        return
    if name not in NAMES:
        raise click.BadParameter(
            f"no schema {name!r}; one of: {', '.join(NAMES)}", param_hint="NAME"
        )
    click.echo(text(name), nl=False)


@main.command()
@click.option(
    "--routes",
    "routes_file",
    type=click.Path(dir_okay=False),
    help="Routes file [default: RELAY_ROUTES_FILE, else the default routing].",
)
@click.option(
    "--group",
    "groups",
    multiple=True,
    help="A consumer group reading the streams, listed in x-relay (repeatable).",
)
def asyncapi(routes_file: str | None, groups: tuple[str, ...]) -> None:
    """Print the AsyncAPI 3.0 document of the streams the routes can write (and their
    dead-letter streams), with the schemas of `relay schema`."""  # fmt: skip
    import json

    from relay.asyncapi import Trimming, build
    from relay.cli.app import load_settings
    from relay.streams.routes import load_routes_file
    from relay.worker.deadletter import DLQ_MAXLEN

    settings = load_settings()  # a RELAY_ROUTES_FILE that does not load ends here
    routes = None
    if routes_file is not None:
        try:
            routes = load_routes_file(routes_file)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--routes") from None
    elif settings.routes_file is not None:
        routes = load_routes_file(settings.routes_file)
    trimming = Trimming(settings.stream_maxlen, settings.stream_max_age,
                        settings.stream_hard_maxlen)  # fmt: skip
    document = build(
        prefix=settings.stream_prefix, events=settings.events, routes=routes,
        trimming=trimming, redis_url=settings.redis_url, cluster=settings.redis_cluster,
        groups=groups, dlq_maxlen=DLQ_MAXLEN,
    )  # fmt: skip
    click.echo(json.dumps(document, indent=2))
