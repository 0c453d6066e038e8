"""docs/workers.md's option table lists every option of ``relay worker``, nothing else, and
the defaults the options declare."""

from __future__ import annotations

import re
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from relay.options import WorkerOptions

PAGE = Path(__file__).resolve().parents[2] / "docs" / "workers.md"
HEADER = "| option | default | meaning |"


def option_rows(text: str) -> dict[str, str]:
    """Each documented flag and the default its row gives it."""
    lines = text.splitlines()
    start = lines.index(HEADER) + 2  # past the header and its rule
    documented: dict[str, str] = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        option, default, _ = (cell.strip() for cell in line.strip("|").split(" | ", 2))
        flags = re.findall(r"`(--[a-z-]+)", option)
        defaults = default.split(" / ")
        if len(defaults) == 1:  # one default for the row's flags ("required")
            defaults *= len(flags)
        assert len(defaults) == len(flags), line
        documented.update(zip(flags, defaults, strict=True))
    return documented


def declared() -> dict[str, object]:
    flags = WorkerOptions.flags()
    return {flags[f.name].flag: f.default for f in fields(WorkerOptions)}


def test_the_table_lists_every_option_and_nothing_else() -> None:
    assert sorted(option_rows(PAGE.read_text())) == sorted(declared())


def test_the_table_gives_the_declared_defaults() -> None:
    documented = option_rows(PAGE.read_text())
    for flag, default in declared().items():
        shown = documented[flag]
        if default is MISSING:
            assert shown == "required", flag
        elif default is None:
            # described in words (no limit, host name + pid, 10 x concurrency), not a value
            assert not re.fullmatch(r"`[^`\s]+`", shown), flag
        else:
            value = shown.strip("`")
            assert value == str(default) or float(value) == default, flag


def test_a_row_for_an_option_that_does_not_exist_is_caught() -> None:
    text = PAGE.read_text().replace(
        HEADER + "\n| --- | --- | --- |\n",
        HEADER + "\n| --- | --- | --- |\n| `--prefetch N` | `4` | gone |\n",
    )
    assert "--prefetch" in option_rows(text)
    with pytest.raises(AssertionError):
        assert sorted(option_rows(text)) == sorted(declared())


def test_the_cli_offers_exactly_the_declared_options() -> None:
    from relay.cli.workers import worker

    offered = {opt for param in worker.params for opt in param.opts if opt != "--help"}
    assert offered == set(declared())
