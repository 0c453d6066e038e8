"""Replica acknowledgement: with ``RELAY_REDIS_WAIT_REPLICAS=n`` a write counts only once
``n`` replicas hold it (``WAIT n timeout``), so a promoted replica has every entry that was
answered 200.

``WAIT`` waits for the replication offset of its own connection's last write. A delivery
found to be a duplicate wrote nothing, and its original write may have gone out on another
connection or from another relay, whose replication this connection's ``WAIT`` would not
cover. So every ``WAIT`` follows a *fence*: a one-key write on the same connection, which
moves the connection's offset to the master's current one, past every write the master had
applied, the original included (replicas apply the stream in order). A re-send after a
``503 replication_timeout`` therefore confirms the first attempt's entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.exceptions import RedisClusterException, RedisError

from relay.streams.append import Command, Written, decode_reply, encode, reloading_script
from relay.streams.keys import hash_tag

FENCE_KEY = "relay:replication-fence"


class ReplicationTimeout(RedisError):
    """Fewer replicas than asked confirmed the write in time: the delivery is answered 503
    (``replication_timeout``) and the sender's re-send dedupes and waits again."""

    def __init__(self, acknowledged: int, wanted: int) -> None:
        super().__init__(f"{acknowledged} of {wanted} replicas confirmed the write in time")
        self.acknowledged = acknowledged
        self.wanted = wanted


def fence_key(stream: str | None = None) -> str:
    """The fence of a single Redis, or of ``stream``'s slot on a Cluster."""
    return FENCE_KEY if stream is None else f"{FENCE_KEY}:{{{hash_tag(stream)}}}"


@dataclass(frozen=True, slots=True)
class ReplicaAck:
    replicas: int
    timeout_ms: int

    @property
    def timeout_s(self) -> float:
        return self.timeout_ms / 1000

    def commands(self, stream: str | None = None) -> tuple[Command, Command]:
        """The fence (on ``stream``'s slot on a Cluster), then ``WAIT``."""
        return ("SET", fence_key(stream), b"1"), ("WAIT", self.replicas, self.timeout_ms)

    def encoded(self) -> bytes:
        """:meth:`commands` of a single Redis in RESP, to follow a batch of appends."""
        return b"".join(
            b"*%d\r\n%b" % (len(command), encode([_bytes(arg) for arg in command]))
            for command in self.commands()
        )

    def check(self, fence: object, acknowledged: object) -> None:
        """Raise the fence's or ``WAIT``'s error, or :class:`ReplicationTimeout`."""
        for reply in (fence, acknowledged):
            if isinstance(reply, Exception):
                raise reply
        if not isinstance(acknowledged, int) or acknowledged < self.replicas:
            raise ReplicationTimeout(
                acknowledged if isinstance(acknowledged, int) else 0, self.replicas
            )


async def run_confirmed_appends(
    cluster: RedisCluster, commands: Sequence[Command], streams: Sequence[str], ack: ReplicaAck
) -> list[list[Written]]:
    """``run_appends`` on a Cluster, each node's appends followed by its fence and ``WAIT``
    in the same pipeline, hence on the same connection: one round trip per node.

    ``streams`` holds one stream per command (its slot). Raises the first error met, or
    :class:`ReplicationTimeout` when a node's replicas did not confirm, or when a slot
    moved meanwhile (the ``WAIT`` may then have run on a node that no longer holds it).
    """
    await cluster.initialize()  # a no-op once the slots are known
    nodes: dict[str, tuple[ClusterNode, str]] = {}  # one fence and WAIT per node, on the
    for stream in streams:  # slot of a stream it serves
        node = _owner(cluster, stream)
        nodes.setdefault(node.name, (node, stream))

    async def round_trip() -> list[object]:
        async with cluster.pipeline() as pipe:
            for command in commands:
                pipe.execute_command(*command)
            for node, stream in nodes.values():
                fence, wait = ack.commands(stream)
                pipe.execute_command(*fence)
                pipe.execute_command(*wait, target_nodes=node)
            return list(await pipe.execute(raise_on_error=False))

    replies = await reloading_script(cast(Redis, cluster), round_trip)
    written = [decode_reply(reply) for reply in replies[: len(commands)]]
    confirmations = replies[len(commands) :]
    for (name, (_, stream)), fence, acknowledged in zip(
        nodes.items(), confirmations[::2], confirmations[1::2], strict=True
    ):
        ack.check(fence, acknowledged)
        if _owner(cluster, stream).name != name:
            raise ReplicationTimeout(0, ack.replicas)
    return written


def _owner(cluster: RedisCluster, stream: str) -> ClusterNode:
    """The master serving ``stream``'s slot, as the client knows it now."""
    try:
        node = cluster.get_node_from_key(fence_key(stream))
    except RedisClusterException as exc:  # not a RedisError: keep it a 503
        raise RedisError(str(exc)) from None
    if node is None:
        raise RedisError(f"no known node serves the slot of {stream!r}")
    return node


def _bytes(arg: str | bytes | int) -> bytes:
    return arg if isinstance(arg, bytes) else str(arg).encode()
