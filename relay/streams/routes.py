"""Which streams an event goes to.

Without a routes file every event goes to ``{prefix}:events`` and ``{prefix}:events:{event}``.
A routes file replaces that: the union of the streams of every matching rule, or
``{prefix}:unrouted`` when none matches, so nothing signed is ever dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from relay.redis.keys import check_stream_name, event_stream, events_stream, unrouted_stream
from relay.settings import Settings

ANY_EVENT = "*"


class RouteRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event: str = Field(min_length=1)
    workflow_id: str | None = Field(default=None, min_length=1)
    streams: tuple[str, ...] = Field(min_length=1)

    @field_validator("streams")
    @classmethod
    def _valid_stream_names(cls, streams: tuple[str, ...]) -> tuple[str, ...]:
        for name in streams:
            check_stream_name(name)
        return streams

    def matches(self, event: str, workflow_id: str) -> bool:
        if self.event != ANY_EVENT and self.event != event:
            return False
        return self.workflow_id is None or self.workflow_id == workflow_id


class _RoutesDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    routes: tuple[RouteRule, ...] = Field(min_length=1)


@dataclass(frozen=True)
class RoutesFile:
    """The validated content of ``RELAY_ROUTES_FILE``."""

    path: str
    rules: tuple[RouteRule, ...]


def load_routes_file(path: str | Path) -> RoutesFile:
    """Read and validate a routes file; every problem is a ``ValueError`` with one clear line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"cannot read {path}: {reason}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{path} is not valid YAML{where}") from None
    try:
        parsed = _RoutesDocument.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or "document"
        message = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"{path}: {location}: {message}") from None
    return RoutesFile(path=str(path), rules=parsed.routes)


def router_for(settings: Settings) -> Router:
    """The router of ``RELAY_STREAM_PREFIX`` and ``RELAY_ROUTES_FILE`` (parsed here; the
    CLI parses it once at start-up too, so that a bad file ends the process in one line)."""
    path = settings.routes_file
    return Router(settings.stream_prefix, load_routes_file(path) if path is not None else None)


class Router:
    """Maps an event to its streams; built once, consulted on every delivery."""

    def __init__(self, prefix: str, routes: RoutesFile | None = None) -> None:
        self._prefix = prefix
        self._rules = routes.rules if routes is not None else None
        self._firehose = events_stream(prefix)
        self.unrouted = unrouted_stream(prefix)

    def streams_for(self, event: str, workflow_id: str) -> tuple[str, ...]:
        if self._rules is None:
            return (self._firehose, event_stream(self._prefix, event))
        streams: dict[str, None] = {}  # ordered union
        for rule in self._rules:
            if rule.matches(event, workflow_id):
                streams.update(dict.fromkeys(rule.streams))
        return tuple(streams) or (self.unrouted,)

    def known_streams(self, events: Iterable[str]) -> list[str]:
        """Every stream these routes can write for ``events`` (the subscribed ones): what
        the trimmer trims and stream health reports on."""
        if self._rules is None:
            return [self._firehose, *(self.per_event_stream(e) for e in events)]
        streams = dict.fromkeys(stream for rule in self._rules for stream in rule.streams)
        if not any(rule.event == ANY_EVENT and rule.workflow_id is None for rule in self._rules):
            streams[self.unrouted] = None  # some event can match no rule
        return list(streams)

    def per_event_stream(self, event: str) -> str:
        return event_stream(self._prefix, event)
