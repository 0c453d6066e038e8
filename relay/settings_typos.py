"""``RELAY_*`` variables that name no setting: almost always a typo (``RELAY_PORTT``).

pydantic-settings ignores unknown variables, so a misspelt one silently leaves the default
in force; start-up reports each with the closest real name. Only names are reported, never
values (one could be a secret).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path

PREFIX = "RELAY_"
# RELAY_* names read by something other than the settings (build arguments, scripts).
NOT_SETTINGS = frozenset({"RELAY_IMAGE", "RELAY_HEALTHCHECK_PORT"})


def setting_names() -> list[str]:
    """Every variable the settings read."""
    from relay.settings import Settings

    names = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.append(alias if isinstance(alias, str) else name.upper())
    return names


def dotenv_names(path: Path = Path(".env")) -> list[str]:
    """The variable names a ``.env`` file sets (the settings read it too)."""
    try:
        from dotenv import dotenv_values
    except ImportError:  # pragma: no cover - python-dotenv comes with pydantic-settings
        return []
    if not path.is_file():
        return []
    return [name for name in dotenv_values(path) if name]


def misspelt(names: Iterable[str], known: Iterable[str]) -> list[tuple[str, str | None]]:
    """(unknown RELAY_* name, closest setting or None), each name once, sorted."""
    known_upper = {name.upper() for name in known} | NOT_SETTINGS
    found = []
    for name in sorted({name for name in names if name.upper().startswith(PREFIX)}):
        if name.upper() in known_upper:
            continue
        close = difflib.get_close_matches(name.upper(), sorted(known_upper - NOT_SETTINGS), 1, 0.6)
        found.append((name, close[0] if close else None))
    return found


def warnings_for(environ: Mapping[str, str]) -> list[str]:
    """One line per misspelt variable, from the environment and ``.env``."""
    lines = []
    for name, closest in misspelt([*environ, *dotenv_names()], setting_names()):
        hint = f"; did you mean {closest}?" if closest else ""
        lines.append(f"{name} names no setting and is ignored{hint}")
    return lines
