"""docs/configuration.md documents every variable the settings read."""

from __future__ import annotations

from pathlib import Path

from relay.settings import Settings

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_has_a_row_on_the_configuration_page() -> None:
    rows = [line for line in PAGE.read_text().splitlines() if line.startswith("| `")]
    documented = " ".join(row.split(" | ")[0] for row in rows)
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else name
        assert f"`{alias}`" in documented, f"{alias} is missing from docs/configuration.md"
