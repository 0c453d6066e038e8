"""docs/workers.md's handler-with-its-test example runs, and its tests pass."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

PAGE = Path(__file__).resolve().parents[2] / "docs" / "workers.md"


def example() -> str:
    section = PAGE.read_text().split("### Testing a handler", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "the section shows no Python example"
    return match.group(1)


async def test_the_pages_handler_tests_pass() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(example(), str(PAGE), "exec"), namespace)  # noqa: S102 (our own page)
    tests = [fn for name, fn in namespace.items() if name.startswith("test_")]
    assert len(tests) >= 2
    for test in tests:
        assert inspect.iscoroutinefunction(test)
        await test()
