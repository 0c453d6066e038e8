"""The published format of what the relay writes: JSON Schema (2020-12) documents, shipped
as package data, printed by ``relay schema`` and referenced by ``relay asyncapi``.

A leaf: it reads its own files and imports nothing of the relay.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

# name -> what it describes, in the order `relay schema` lists them
NAMES = {
    "stream-entry": "an entry of a stream the relay writes",
    "dlq-entry": "an entry of a stream's dead-letter stream, <stream>:dlq",
    "extraction.completed": "the payload of an extraction.completed entry",
    "extraction.failed": "the payload of an extraction.failed entry",
}


@cache
def text(name: str) -> str:
    """The schema ``name`` as shipped (JSON text)."""
    if name not in NAMES:
        raise KeyError(f"no schema {name!r}: one of {', '.join(NAMES)}")
    return files("relay.schemas").joinpath(f"{name}.json").read_text()


def load(name: str) -> dict[str, Any]:
    """The schema ``name``, parsed (a fresh copy: callers may change it)."""
    document: dict[str, Any] = json.loads(text(name))
    return document
