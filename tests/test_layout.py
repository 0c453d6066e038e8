"""The rules the test tree keeps, checked on its source.

- Tests wait on state through :mod:`tests.support.waiting`: no other module runs its own
  polling loop (a ``while`` against a clock), and no test sleeps for a duration, except the
  few sleeps below that *are* the behaviour (a slow handler, an outage's length).
- The tree mirrors the package: a test directory is a ``relay`` subpackage (or one of the
  few named below), a module at the root tests a root module of ``relay``.
- Test packages are imported as ``tests.<name>``, so a directory named like a library
  (``tests/redis``) can never shadow it.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.parent / "relay"
WAITING = "support/waiting.py"

# Test directories that are not relay subpackages, and why each is one.
OTHER_DIRECTORIES = {
    "support": "what the tests share: fakes, real servers, the waiting helper",
    "chaos": "failure injection across receiver and workers (bounded in count and time)",
    "cluster": "every part again on a real Redis Cluster",
    "ha": "every part again under Sentinel failover",
    "deploy": "the repository's deploy/ (manifests, images, probes, monitoring)",
    "docs": "the repository's docs/",
    "examples": "the repository's examples/",
    "bench": "the repository's bench/ (the soak run and its report)",
}

# Root test modules that test no relay module.
OTHER_ROOT_MODULES = {
    "test_layout.py": "this file: the tests' own rules",
    "test_layers.py": "the package's import layers: a rule over every module",
}

# Loops against a clock that are not waits: what they time is the behaviour under test.
CLOCK_LOOPS_ALLOWED = {
    ("chaos/sender.py", "while time.monotonic() < deadline:"): (
        "a provider's re-sends, given up at its deadline: the load, not a wait"
    ),
}

# Sleeps that are the behaviour, not synchronisation: (module, line) -> why.
SLEEPS_ALLOWED = {
    ("support/waiting.py", "time.sleep(interval)"): "the one polling loop's interval",
    ("support/waiting.py", "await asyncio.sleep(interval)"): "the one polling loop's interval",
    ("chaos/sender.py", "await asyncio.sleep(0.05)"): "a provider's pause before a re-send",
    ("chaos/sender.py", "await asyncio.sleep(1 / rate)"): "the sender's steady rate",
    (
        "chaos/test_delivery_guarantee.py",
        "time.sleep(0.2)  # the sender sees refused connections meanwhile",
    ): "the length of the relay's outage: the fault itself",
    ("chaos/test_delivery_guarantee.py", "time.sleep(0.5)"): (
        "the length of Redis's outage: the fault itself"
    ),
    ("ingest/test_slow_clients.py", "await asyncio.sleep(TRICKLE_SECONDS)"): (
        "a slow client's pace: what the test is about"
    ),
    ("support/fake_anyformat.py", "await asyncio.sleep(self.delay)"): (
        "the fake API's configured latency"
    ),
    (
        "support/handlers.py",
        'await asyncio.sleep(float(os.environ.get("HANDLER_SECONDS", "2")))',
    ): "a slow handler: work in flight",
    (
        "support/handlers.py",
        'await asyncio.sleep(float(os.environ.get("HANDLER_SECONDS", "0.02")))',
    ): "a handler's work",
    ("worker/test_runtime.py", "await asyncio.sleep(0.001)"): "a handler's work",
    ("worker/test_runtime.py", "await asyncio.sleep(1.5)"): (
        "a handler longer than claim_idle: what heartbeats must cover"
    ),
    ("worker/test_runtime.py", "await asyncio.sleep(0.5)"): "a handler in flight at stop",
    ("worker/test_runtime.py", "await asyncio.sleep(30)"): (
        "a handler that outlasts the shutdown timeout"
    ),
    ("worker/test_runtime.py", "await asyncio.sleep(0.01)"): "a handler's work",
}


def modules(root: Path) -> Iterator[tuple[str, ast.Module, list[str]]]:
    for path in sorted(root.rglob("*.py")):
        source = path.read_text()
        yield path.relative_to(root).as_posix(), ast.parse(source), source.splitlines()


def _calls(node: ast.AST) -> Iterator[ast.Call]:
    return (n for n in ast.walk(node) if isinstance(n, ast.Call))


def _reads_a_clock(call: ast.Call) -> bool:
    """``time.monotonic()``, ``loop.time()``, ``asyncio.get_running_loop().time()``…"""
    function = call.func
    if not isinstance(function, ast.Attribute):
        return False
    if function.attr in ("monotonic", "perf_counter", "monotonic_ns"):
        return True
    receiver = function.value
    return function.attr == "time" and not (
        isinstance(receiver, ast.Name) and receiver.id == "time"  # wall time: a value
    )


def _is_timed_sleep(call: ast.Call) -> bool:
    function = call.func
    name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
    if name != "sleep":
        return False
    args = call.args
    return not (args and isinstance(args[0], ast.Constant) and args[0].value == 0)


def clock_loops(root: Path) -> list[tuple[str, str]]:
    """(module, line) of every ``while`` that reads a clock: a polling loop of its own."""
    found = []
    for name, tree, lines in modules(root):
        if name == WAITING:
            continue
        loops = [n for n in ast.walk(tree) if isinstance(n, ast.While)]
        for loop in sorted(loops, key=lambda n: n.lineno):
            if any(_reads_a_clock(call) for call in _calls(loop)):
                found.append((name, lines[loop.lineno - 1].strip()))
    return found


def timed_sleeps(root: Path) -> list[tuple[str, str]]:
    """(module, line) of every sleep for a duration (``sleep(0)`` only yields: not one)."""
    found = []
    for name, tree, lines in modules(root):
        for call in sorted(_calls(tree), key=lambda n: n.lineno):
            if _is_timed_sleep(call):
                found.append((name, lines[call.lineno - 1].strip()))
    return found


def test_no_module_polls_on_its_own() -> None:
    loops = [found for found in clock_loops(TESTS) if found not in CLOCK_LOOPS_ALLOWED]
    assert loops == [], "wait with tests.support.waiting.wait_for instead"


def test_no_test_sleeps_for_a_duration_except_the_behaviours_listed() -> None:
    sleeps = [found for found in timed_sleeps(TESTS) if found not in SLEEPS_ALLOWED]
    assert sleeps == [], "wait on the state the sleep hoped for (tests.support.waiting)"


def test_every_allowance_is_still_used() -> None:
    """A stale allowance would let the next sleep on that line through unseen."""
    assert set(SLEEPS_ALLOWED) <= set(timed_sleeps(TESTS))
    assert set(CLOCK_LOOPS_ALLOWED) <= set(clock_loops(TESTS))


def test_the_rules_find_a_planted_loop_and_sleeps(tmp_path: Path) -> None:
    (tmp_path / "test_planted.py").write_text(
        "import asyncio, time\n"
        "async def test_x(loop):\n"
        "    deadline = time.monotonic() + 5\n"
        "    while time.monotonic() < deadline:\n"
        "        await asyncio.sleep(0.05)\n"
        "    while True:\n"
        "        if asyncio.get_running_loop().time() > deadline: break\n"
        "    await asyncio.sleep(0)\n"
        "    time.sleep(1)\n"
        "    stamp = time.time()\n"
        "    while stamp < 3: stamp += 1\n"
    )
    assert clock_loops(tmp_path) == [
        ("test_planted.py", "while time.monotonic() < deadline:"),
        ("test_planted.py", "while True:"),
    ]
    assert timed_sleeps(tmp_path) == [
        ("test_planted.py", "await asyncio.sleep(0.05)"),
        ("test_planted.py", "time.sleep(1)"),
    ]


def subpackages() -> set[str]:
    return {p.parent.name for p in PACKAGE.glob("*/__init__.py")}


def test_every_test_directory_is_a_relay_subpackage_or_named_here() -> None:
    directories = {p.parent.relative_to(TESTS).parts[0] for p in TESTS.glob("*/**/*.py")}
    unknown = directories - subpackages() - set(OTHER_DIRECTORIES)
    assert unknown == set(), "move them under the subpackage they test"
    assert set(OTHER_DIRECTORIES).isdisjoint(subpackages())  # no reason needed for those


def test_root_modules_test_root_modules_of_relay() -> None:
    """``test_settings_typos.py`` tests ``relay/settings_typos.py``, and so on: a test of
    subpackage code belongs in that subpackage's directory."""
    roots = {p.stem for p in PACKAGE.glob("*.py")}
    for module in sorted(TESTS.glob("test_*.py")):
        if module.name in OTHER_ROOT_MODULES:
            continue
        name = module.stem.removeprefix("test_")
        assert any(name == r or name.startswith(f"{r}_") for r in roots), module.name


@pytest.mark.parametrize("directory", sorted(p.parent for p in TESTS.glob("*/**/*.py")))
def test_test_directories_are_packages_of_tests(directory: Path) -> None:
    """With ``__init__.py`` everywhere, pytest imports ``tests/redis/test_x.py`` as
    ``tests.redis.test_x`` from the repository root; nothing puts ``tests/`` itself on
    ``sys.path``, where a ``tests/redis`` would be found as ``redis``."""
    assert (directory / "__init__.py").exists()
    assert (TESTS / "__init__.py").exists()


def test_no_test_directory_shadows_an_installed_package() -> None:
    import redis

    assert str(TESTS) not in sys.path
    assert not Path(redis.__file__).resolve().is_relative_to(TESTS)
