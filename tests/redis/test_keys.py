"""Every Lua step touches one slot: a stream and its dedupe set always hash together."""

import pytest
from redis.crc import key_slot

from relay.redis.keys import check_stream_name, dedupe_key, hash_tag, registration_key

NAMES = [
    "anyformat:events",
    "anyformat:events:extraction.completed",
    "{billing}:extractions",
    "team:{invoices}:events",
    "odd{name",
    "x{}y{z}",  # empty first tag: the cluster hashes the whole name... unless it has '}'
    "a:b:c",
]


@pytest.mark.parametrize("name", [n for n in NAMES if n != "x{}y{z}"])
def test_dedupe_key_shares_the_stream_slot(name: str) -> None:
    assert key_slot(dedupe_key(name).encode()) == key_slot(name.encode())


def test_hash_tag_follows_the_cluster_rule() -> None:
    assert hash_tag("{billing}:x") == "billing"
    assert hash_tag("a{}b") == "a{}b"
    assert hash_tag("plain") == "plain"
    assert hash_tag("a{b") == "a{b"


def test_names_whose_slot_no_companion_can_share_are_refused() -> None:
    with pytest.raises(ValueError, match="hash tag"):
        check_stream_name("x{}y{z}")
    with pytest.raises(ValueError, match="hash tag"):
        check_stream_name("a}b")
    with pytest.raises(ValueError, match="empty"):
        check_stream_name("")
    assert check_stream_name("{team}:a}b") == "{team}:a}b"


def test_dedupe_keys_of_different_streams_differ() -> None:
    names = ["a", "{a}", "a:b", "{a}:b", "a:{b}"]
    assert len({dedupe_key(name) for name in names}) == len(names)


def test_registration_key_carries_the_url_as_hash_tag() -> None:
    key = registration_key("anyformat", "https://relay.example.com/hook")
    assert key == "anyformat:registration:{https://relay.example.com/hook}"
    assert key_slot(key.encode()) == key_slot((key + ":lock").encode())
