"""The console's templates: Jinja2 with autoescaping always on, so anything that came
from a sender (payloads, error texts, ids) reaches the page as text, never as HTML.

The filters turn the API's figures into what a person reads; nothing here touches Redis.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

NOTHING = "\u2013"  # an en dash: what a figure Redis could not give reads as

environment = Environment(
    loader=PackageLoader("relay.console", "templates"),
    autoescape=True,  # every template, whatever its name: no select_autoescape by suffix
    undefined=StrictUndefined,  # a misspelt field fails the test instead of rendering blank
    trim_blocks=True,
    lstrip_blocks=True,
)


def duration(seconds: float | int | None) -> str:
    """``0.4 s``, ``12 s``, ``3 min 5 s``, ``2 h 10 min``, ``3 d 4 h``; a dash for nothing."""
    if seconds is None:
        return NOTHING
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    for size, unit, smaller, small_unit in (
        (86400, "d", 3600, "h"),
        (3600, "h", 60, "min"),
        (60, "min", 1, "s"),
    ):
        if whole >= size:
            rest = (whole % size) // smaller
            return f"{whole // size} {unit}" + (f" {rest} {small_unit}" if rest else "")
    return f"{whole} s"


def count(value: int | None) -> str:
    """Thousands separated by a thin space; a dash when Redis could not tell."""
    if value is None:
        return NOTHING
    return f"{value:,}".replace(",", "\u2009")


def moment(value: str | None) -> str:
    """An API time (ISO 8601 UTC) as ``2026-12-07 23:41:05 UTC``."""
    if not value:
        return NOTHING
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    return parsed.strftime("%Y-%m-%d %H:%M:%S UTC")


environment.filters.update(duration=duration, count=count, moment=moment)


def render(template: str, **context: Any) -> str:
    return environment.get_template(template).render(**context)
