from pathlib import Path

import pytest

from relay.streams.routes import Router, load_routes_file, router_for
from tests.support.settings import settings

WORKFLOW = "550e8400-e29b-41d4-a716-446655440000"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(text)
    return path


def test_default_routes_send_every_event_to_the_firehose_and_its_own_stream() -> None:
    router = Router("anyformat")
    assert router.streams_for("extraction.completed", "") == (
        "anyformat:events",
        "anyformat:events:extraction.completed",
    )


def test_a_future_event_type_is_routed_like_any_other() -> None:
    assert Router("af").streams_for("document.classified", "w") == (
        "af:events",
        "af:events:document.classified",
    )


def test_sender_controlled_event_names_cannot_move_a_stream_to_another_slot() -> None:
    (_, per_event) = Router("af").streams_for("x}{y", "")
    assert "{" not in per_event and "}" not in per_event


ROUTES = f"""
routes:
  - event: extraction.completed
    streams: [billing:extractions, audit]
  - event: "*"
    workflow_id: {WORKFLOW}
    streams: [team-invoices:events, audit]
  - event: extraction.failed
    streams: [alerts]
"""


def test_a_routes_file_sends_an_event_to_the_union_of_matching_rules(tmp_path: Path) -> None:
    router = Router("anyformat", load_routes_file(write(tmp_path, ROUTES)))
    assert router.streams_for("extraction.completed", WORKFLOW) == (
        "billing:extractions",
        "audit",
        "team-invoices:events",
    )
    assert router.streams_for("extraction.completed", "other") == ("billing:extractions", "audit")
    assert router.streams_for("extraction.failed", "other") == ("alerts",)
    assert router.streams_for("anything.else", WORKFLOW) == ("team-invoices:events", "audit")


def test_the_router_of_the_settings_parses_their_routes_file(tmp_path: Path) -> None:
    router = router_for(settings(RELAY_ROUTES_FILE=str(write(tmp_path, ROUTES))))
    assert router.streams_for("extraction.failed", "other") == ("alerts",)
    default = router_for(settings(RELAY_STREAM_PREFIX="af"))
    assert default.streams_for("extraction.failed", "") == (
        "af:events",
        "af:events:extraction.failed",
    )
    (tmp_path / "routes.yaml").write_text("routes: []\n")
    with pytest.raises(ValueError, match=r"routes\.yaml: routes: "):
        router_for(settings(RELAY_ROUTES_FILE=str(tmp_path / "routes.yaml")))


def test_an_event_no_rule_matches_goes_to_unrouted(tmp_path: Path) -> None:
    router = Router("anyformat", load_routes_file(write(tmp_path, ROUTES)))
    assert router.streams_for("document.deleted", "other") == ("anyformat:unrouted",)


def test_the_known_streams_are_every_stream_the_routes_can_write(tmp_path: Path) -> None:
    events = ["extraction.completed", "extraction.failed"]
    assert Router("af").known_streams(events) == [
        "af:events", "af:events:extraction.completed", "af:events:extraction.failed",
    ]  # fmt: skip
    router = Router("af", load_routes_file(write(tmp_path, ROUTES)))
    assert router.known_streams(events) == [
        "billing:extractions", "audit", "team-invoices:events", "alerts", "af:unrouted",
    ]  # fmt: skip
    catch_all = write(tmp_path, "routes:\n  - event: '*'\n    streams: [all]\n")
    assert Router("af", load_routes_file(catch_all)).known_streams(events) == ["all"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("routes: [", "not valid YAML at line"),
        ("routes: []", "routes: Tuple should have at least 1 item"),
        ("- a\n- b\n", "Input should be a valid dictionary"),
        ("routes:\n  - event: x\n", "routes.0.streams: Field required"),
        ("routes:\n  - event: x\n    streams: []\n", "at least 1 item"),
        ("routes:\n  - event: x\n    streams: [a]\n    stream: b\n", "Extra inputs"),
        ("routes:\n  - event: x\n    streams: ['a}b']\n", "hash tag"),
        ("routes:\n  - event: ''\n    streams: [a]\n", "at least 1 character"),
    ],
)
def test_invalid_routes_files_are_refused_with_one_clear_line(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        load_routes_file(write(tmp_path, text))
    assert "\n" not in str(caught.value)


def test_an_unreadable_routes_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot read .*No such file"):
        load_routes_file(tmp_path / "missing.yaml")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="cannot read"):
        load_routes_file(tmp_path / "binary.yaml")
