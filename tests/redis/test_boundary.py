"""The Redis boundary holds: outside ``relay/redis`` no module imports redis-py, runs Lua,
drives a connection by hand or spells a key.

Read from the source (AST), so it holds for code no test runs. Each rule is also run on a
planted violation: a rule that cannot fail proves nothing.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "relay"
BOUNDARY = PACKAGE / "redis"

# Redis commands and redis-py methods that run Lua, and the connection internals of the
# batch path: only relay.redis.scripts and relay.redis.batch call them.
LUA_CALLS = {"register_script", "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall",
             "fcall_ro", "script_load", "function_load"}  # fmt: skip
LUA_COMMANDS = {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO", "SCRIPT"}
CONNECTION_CALLS = {"get_connection", "send_packed_command", "read_response",
                    "send_command", "pack_command", "connection_pool"}  # fmt: skip

# A key format: a ':' glued to a placeholder ("{stream}:dlq", "relay:trim:{tag}"), a
# literal that starts with the relay's key namespace, or ':suffix' added to a string.
KEY_NAMESPACE = re.compile(r"^relay:\S")
GLUED_COLON = re.compile(r"(^:[\w{]|[\w}]:$)")

# Allowed, each for a reason:
ALLOWED_KEY_SPELLINGS = {
    # The reconciled event's webhook id ("reconcile:<run>:<status>"): the value of an
    # entry's ``id`` field and of its dedupe mark, not a Redis key.
    ("reconcile/events.py", "{SOURCE}:{run.id}:{run.status}"),
    # The INFO reply of relay dev's embedded server ("redis_version:<v>"): a reply it
    # serves in Redis's format, not a key.
    (
        "dev/embedded.py",
        "# Server\\r\\nredis_version:{EMBEDDED_VERSION}\\r\\nredis_mode:standalone\\r\\n"
        "# embedded: fakeredis, in memory, relay dev only\\r\\n",
    ),
}


def modules_outside() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if BOUNDARY not in path.parents:
            yield str(path.relative_to(PACKAGE)), ast.parse(path.read_text(), str(path))


def redis_imports(tree: ast.Module) -> list[str]:
    """Every import of redis-py (``redis`` or ``redis.<anything>``), lazy ones included."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "redis"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [node.module] if node.module.split(".")[0] == "redis" else []
    return found


def lua_and_connection_uses(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in LUA_CALLS | CONNECTION_CALLS:
            found.append(f".{node.attr}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
            if text.upper() == text and text in LUA_COMMANDS:
                found.append(repr(node.value))
    return found


def key_spellings(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = [v.value for v in node.values if isinstance(v, ast.Constant)]
            placeholders = any(isinstance(v, ast.FormattedValue) for v in node.values)
            glued = placeholders and any(GLUED_COLON.search(str(part)) for part in parts)
            if glued or (parts and KEY_NAMESPACE.match(str(parts[0]))):
                found.append(ast.unparse(node)[2:-1])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if KEY_NAMESPACE.match(node.value):
                found.append(node.value)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            sides = [side for side in (node.left, node.right) if isinstance(side, ast.Constant)]
            if any(re.match(r"^:[\w{]", str(side.value)) for side in sides):
                found.append(ast.unparse(node))
    return found


def violations(rule: str, modules: Iterable[tuple[str, ast.Module]] | None = None) -> list[str]:
    check = {
        "imports": redis_imports,
        "lua": lua_and_connection_uses,
        "keys": key_spellings,
    }[rule]
    found = []
    for name, tree in modules_outside() if modules is None else modules:
        for spelling in check(tree):
            if rule == "keys" and (name, spelling) in ALLOWED_KEY_SPELLINGS:
                continue
            found.append(f"{name}: {spelling}")
    return found


def test_nothing_outside_relay_redis_imports_redis_py() -> None:
    """Not even ``Redis`` for a type hint or an exception to catch: ``relay.redis.client``
    and ``relay.redis.errors`` re-export those, so this rule has no exceptions."""
    assert violations("imports") == []


def test_nothing_outside_relay_redis_runs_lua_or_drives_a_connection() -> None:
    assert violations("lua") == []


def test_nothing_outside_relay_redis_spells_a_key() -> None:
    assert violations("keys") == []


def test_the_delivery_path_sees_only_the_streams_errors() -> None:
    """The handler answers ``StreamsUnavailable`` and ``ReplicationTimeout``
    (``relay.streams.errors``): it imports nothing of the Redis boundary, so no Redis
    client's exception can be what it catches."""
    handler = ast.parse((PACKAGE / "ingest" / "handler.py").read_text())
    assert delivery_path_violations(handler) == []
    planted = ast.parse("from relay.redis.errors import REDIS_DOWN\nexcept_ = RedisError")
    assert delivery_path_violations(planted) == ["relay.redis.errors", "RedisError"]


def delivery_path_violations(tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("relay.redis"):
            found.append(str(node.module))
        elif isinstance(node, ast.Name) and node.id.startswith("Redis"):
            found.append(node.id)
    return found


def test_every_lua_script_lives_in_relay_redis_and_is_registered() -> None:
    from relay.redis import functions
    from relay.redis.scripts import SCRIPTS

    assert sorted(PACKAGE.rglob("*.lua")) == sorted((BOUNDARY / "lua").glob("*.lua"))
    # the scripts, and the one Functions library (relay.redis.functions)
    registered = {script.name for script in SCRIPTS} | {functions.NAME}
    assert registered == {path.stem for path in (BOUNDARY / "lua").glob("*.lua")}
    assert len({script.sha for script in SCRIPTS}) == len(SCRIPTS)


PLANTS = {
    "imports": [
        "from redis.asyncio import Redis",
        "import redis.crc",
        "def f():\n    from redis.commands.core import AsyncScript",
    ],
    "lua": [
        "script = redis.register_script(SOURCE)",
        "await redis.eval(SOURCE, 1, key)",
        "pipe.execute_command('EVALSHA', sha, 1, key)",
        "await connection.send_packed_command(packed)",
        "await redis.connection_pool.get_connection()",
    ],
    "keys": [
        "key = f'{stream}:dlq'",
        "key = f'relay:trim:{{{tag}}}:{stream}'",
        "FENCE = 'relay:replication-fence'",
        "lock = registration_key(prefix, url) + ':lock'",
        "stream = f'{prefix}:events:{event}'",
    ],
}
CLEAN = [
    "click.echo(f'relay: {exc}')",
    "masked = url.split('://', 1)[0] + '://***'",
    "masked = f'{user}:***@{host}'",
    "click.echo(f'dlq_id: {letter.dlq_id}')",
    "log.info('started', url=f'http://{host}:{port}/')",
    "stream = dlq_stream(stream)",
]


@pytest.mark.parametrize(
    ("rule", "source"), [(rule, source) for rule, sources in PLANTS.items() for source in sources]
)
def test_each_rule_catches_a_planted_violation(rule: str, source: str) -> None:
    assert violations(rule, [("streams/planted.py", ast.parse(source))]) != []


@pytest.mark.parametrize("source", CLEAN)
def test_messages_that_merely_hold_a_colon_are_no_key(source: str) -> None:
    planted = [("cli/planted.py", ast.parse(source))]
    assert [violations(rule, planted) for rule in PLANTS] == [[], [], []]
