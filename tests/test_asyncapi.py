"""`relay asyncapi`: a channel per stream and per DLQ, the schemas referenced, x-relay said,
no credential printed; the AsyncAPI project's parser accepts it (and refuses a broken one)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from relay.cli import main
from relay.schemas import NAMES

ROOT = Path(__file__).resolve().parents[1]
CHECKER = ROOT / "ci" / "asyncapi"
ROUTES = """
routes:
  - event: extraction.completed
    streams: [billing:completed, "{audit}:events"]
  - event: extraction.failed
    workflow_id: wf-7
    streams: [alerts:failed]
"""


def document(tmp_path: Path, *args: str, **env: str) -> dict[str, Any]:
    result = CliRunner(env=env).invoke(main, ["asyncapi", *args])
    assert result.exit_code == 0, result.output
    parsed: dict[str, Any] = json.loads(result.output)
    return parsed


def by_key(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {channel["x-relay"]["key"]: channel for channel in doc["channels"].values()}


def test_default_routing_a_channel_per_stream_and_per_dlq(tmp_path: Path) -> None:
    doc = document(tmp_path, "--group", "billing")
    channels = by_key(doc)
    streams = ["anyformat:events", "anyformat:events:extraction.completed",
               "anyformat:events:extraction.failed"]  # fmt: skip
    assert sorted(channels) == sorted([*streams, *(f"{s}:dlq" for s in streams)])
    events = channels["anyformat:events"]
    assert events["address"] == "anyformat:events"
    assert events["x-relay"]["routed"] == [
        {"event": "extraction.completed"},
        {"event": "extraction.failed"},
    ]
    assert events["x-relay"]["groups"] == ["billing"]
    assert events["x-relay"]["trimming"]["maxlen"] == 1_000_000
    assert channels["anyformat:events:extraction.failed"]["x-relay"]["routed"] == [
        {"event": "extraction.failed"}
    ]
    assert channels["anyformat:events:dlq"]["x-relay"]["stream"] == "anyformat:events"
    assert set(doc["components"]["schemas"]) == set(NAMES)
    messages = doc["components"]["messages"]
    assert messages["streamEntry"]["payload"] == {"$ref": "#/components/schemas/stream-entry"}
    assert messages["deadLetter"]["payload"] == {"$ref": "#/components/schemas/dlq-entry"}
    assert len(doc["operations"]) == 2 * len(streams)


def test_a_routes_file_gives_its_streams_and_unrouted(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    channels = by_key(document(tmp_path, "--routes", str(routes)))
    assert sorted(k for k in channels if not k.endswith(":dlq")) == sorted(
        ["billing:completed", "{audit}:events", "alerts:failed", "anyformat:unrouted"]
    )
    assert channels["alerts:failed"]["x-relay"]["routed"] == [
        {"event": "extraction.failed", "workflow_id": "wf-7"}
    ]
    # AsyncAPI reads {…} in an address as a parameter: the hash-tagged key is in x-relay.
    assert channels["{audit}:events"]["address"] is None
    assert channels["anyformat:unrouted"]["x-relay"]["routed"][0]["event"] == "*"


def test_the_redis_url_s_password_is_never_printed(tmp_path: Path) -> None:
    url = "redis://relay:s3cr3t-pw@redis.internal:6380/2"
    result = CliRunner(env={"RELAY_REDIS_URL": url}).invoke(main, ["asyncapi"])
    assert "s3cr3t-pw" not in result.output
    server = json.loads(result.output)["servers"]["redis"]
    assert (server["host"], server["pathname"]) == ("redis.internal:6380", "/2")


def test_an_unreadable_routes_file_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["asyncapi", "--routes", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2 and "cannot read" in result.output


def parser_check(path: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not (CHECKER / "node_modules" / "@asyncapi" / "parser").is_dir():
        if os.environ.get("CI"):
            pytest.fail("CI must run the AsyncAPI parser: node and `npm ci` in ci/asyncapi")
        pytest.skip("node or ci/asyncapi's node_modules missing (npm ci --prefix ci/asyncapi)")
    return subprocess.run([node, str(CHECKER / "validate.mjs"), str(path)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.mark.parametrize("routed", [False, True])
def test_the_asyncapi_parser_accepts_the_document(tmp_path: Path, routed: bool) -> None:
    args: list[str] = []
    if routed:
        (tmp_path / "routes.yaml").write_text(ROUTES)
        args = ["--routes", str(tmp_path / "routes.yaml")]
    path = tmp_path / "asyncapi.json"
    path.write_text(json.dumps(document(tmp_path, *args)))
    done = parser_check(path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "asyncapi: valid 3.0.0" in done.stdout


def test_the_asyncapi_parser_refuses_a_broken_document(tmp_path: Path) -> None:
    """The check can fail: a message pointing at a schema that is not there."""
    doc = document(tmp_path)
    del doc["components"]["schemas"]["stream-entry"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(doc))
    done = parser_check(path)
    assert done.returncode == 1 and "asyncapi: invalid" in done.stdout
