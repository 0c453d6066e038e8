from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture(autouse=True)
def say(
    capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> Callable[[str], None]:
    """Print past the capture: the counts of every chaos run belong in CI's output."""

    def emit(line: str) -> None:
        with capsys.disabled():
            print(f"\n[{request.node.name}] {line}")

    return emit
