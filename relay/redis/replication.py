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
from redis.exceptions import RedisError

from relay.redis.cluster import ClusterNode, owner
from relay.redis.keys import fence_key
from relay.redis.resp import Command, encode_command
from relay.redis.scripts import Script, reloading


class ReplicasBehind(RedisError):
    """Fewer replicas than asked confirmed the write in time (or the slot moved while
    waiting); the streams report it as their ``ReplicationTimeout``."""

    def __init__(self, acknowledged: int, wanted: int) -> None:
        super().__init__(f"{acknowledged} of {wanted} replicas confirmed the write in time")
        self.acknowledged = acknowledged
        self.wanted = wanted


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
        return b"".join(encode_command(command) for command in self.commands())

    def check(self, fence: object, acknowledged: object) -> None:
        """Raise the fence's or ``WAIT``'s error, or :class:`ReplicasBehind`."""
        for reply in (fence, acknowledged):
            if isinstance(reply, Exception):
                raise reply
        if not isinstance(acknowledged, int) or acknowledged < self.replicas:
            raise ReplicasBehind(
                acknowledged if isinstance(acknowledged, int) else 0, self.replicas
            )


async def confirmed_pipeline(
    cluster: RedisCluster,
    script: Script,
    commands: Sequence[Command],
    streams: Sequence[str],
    ack: ReplicaAck,
) -> list[object]:
    """The replies of ``commands`` (calls of ``script``, errors as values) on a Cluster, each
    node's commands followed by its fence and ``WAIT`` in the same pipeline, hence on the
    same connection: one round trip per node.

    ``streams`` holds one stream per command (its slot). Raises the first error a command,
    a fence or a ``WAIT`` met, or :class:`ReplicasBehind` when a node's replicas did not
    confirm, or when a slot moved meanwhile (the ``WAIT`` may then have run on a node that
    no longer holds it).
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

    replies = await reloading(cast(Redis, cluster), script, round_trip)
    written = replies[: len(commands)]
    for reply in written:  # a command's error first, as a pipeline without WAIT raises it
        if isinstance(reply, Exception):
            raise reply
    confirmations = replies[len(commands) :]
    for (name, (_, stream)), fence, acknowledged in zip(
        nodes.items(), confirmations[::2], confirmations[1::2], strict=True
    ):
        ack.check(fence, acknowledged)
        if _owner(cluster, stream).name != name:
            raise ReplicasBehind(0, ack.replicas)
    return written


def _owner(cluster: RedisCluster, stream: str) -> ClusterNode:
    """The master serving ``stream``'s slot (its fence's), as the client knows it now."""
    return owner(cluster, fence_key(stream))
