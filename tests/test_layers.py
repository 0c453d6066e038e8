"""Imports go only downward: leaves, then settings, then the Redis boundary, then the domain
packages, then the programs (receiver, CLI). Read from the source (AST), lazy imports
included, so an upward import fails here before it makes a cycle somewhere else."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "relay"
DOMAIN = ("relay.streams", "relay.worker", "relay.registration", "relay.reconcile", "relay.ingest")
PROGRAMS = ("relay.receiver", "relay.cli", "relay.dev", "relay.supervisor")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def relay_imports(path: Path) -> set[str]:
    """The modules of the relay that ``path`` imports (``from relay import x`` counts as
    the package root)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return {name for name in found if name == "relay" or name.startswith("relay.")}


def imports_of(prefix: str) -> dict[str, set[str]]:
    """Each module under ``prefix`` (a module or a package) and what it imports."""
    return {
        module_name(path): relay_imports(path)
        for path in sorted(PACKAGE.rglob("*.py"))
        if module_name(path) == prefix or module_name(path).startswith(prefix + ".")
    }


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def upward(prefix: str, allowed: tuple[str, ...]) -> list[str]:
    """Imports of ``prefix``'s modules that leave it and are not in ``allowed``."""
    return sorted(
        f"{module} imports {name}"
        for module, names in imports_of(prefix).items()
        for name in names
        if not under(name, (prefix, *allowed))
    )


def test_the_version_is_a_leaf() -> None:
    assert upward("relay.version", ()) == []


def test_the_key_layout_is_a_leaf() -> None:
    """Settings validates the stream prefix with it: it must import nothing."""
    assert upward("relay.redis.keys", ()) == []


def test_settings_read_the_environment_and_validate_values_only() -> None:
    """No routing, no Redis, no domain: the routes file is parsed by the routing code."""
    assert upward("relay.settings", ("relay.redis.keys", "relay.reserved_domains")) == []


def test_the_redis_boundary_imports_no_domain_package_nor_program() -> None:
    assert upward("relay.redis", ("relay.settings", "relay.version")) == []


@pytest.mark.parametrize("package", ["relay.streams", "relay.registration", "relay.reconcile",
                                     "relay.ingest"])  # fmt: skip
def test_the_domain_packages_import_no_program(package: str) -> None:
    found = [line for line in upward(package, ()) if under(line.split()[-1], PROGRAMS)]
    assert found == []


def test_nothing_imports_the_package_root() -> None:
    """``relay`` reaches ``relay.worker`` (``from relay import Worker``): a module that
    takes ``__version__`` from there instead of ``relay.version`` pulls the runtime in."""
    found = [module for module, names in imports_of("relay").items() if "relay" in names]
    assert found == []


def test_the_checks_see_a_planted_upward_import(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text("def f():\n    from relay.streams.routes import Router\nimport relay\n")
    assert relay_imports(planted) == {"relay.streams.routes", "relay"}
    assert under("relay.streams.routes", DOMAIN) and not under("relay.streamsx", DOMAIN)
