"""The soak's Redis: one server on AOF, or (``--sentinel``) a master and a replica on AOF
under three sentinels. Either way: the settings that point the relay and workers at it, a
client of the current master, and its fault.

Both servers write with ``appendfsync always``: an answered write is on disk, so a SIGKILL
of Redis loses nothing that was acknowledged. Under Sentinel the relays answer 200 only once
the replica holds the write (``RELAY_REDIS_WAIT_REPLICAS=1``), so a failover loses no
accepted delivery either; what it can lose is a worker's last acknowledgements (not waited
for), which comes back as a double handling inside the failover window.
"""

from __future__ import annotations

import time

import redis

from tests.support.redis_sentinel import MASTER_NAME, RedisSentinelSet
from tests.support.redis_server import RedisServer

AOF = ("--appendonly", "yes", "--appendfsync", "always")


class PlainRedis:
    fault_name = "redis-restart"

    def __init__(self) -> None:
        self.server = RedisServer(*AOF)

    def start(self) -> None:
        self.server.start()

    def settings(self) -> dict[str, str]:
        return {"RELAY_REDIS_URL": self.server.url}

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.server.port, socket_timeout=5)

    def fault(self) -> dict[str, object]:
        """SIGKILL, then start again on the same port and AOF."""
        self.server.kill()
        self.server.start()
        return {}

    def close(self) -> None:
        self.server.close()


class SentinelRedis:
    fault_name = "redis-failover"

    def __init__(self) -> None:
        self.set = RedisSentinelSet()
        self.set.master.extra_args = AOF
        self.failovers: list[float] = []  # wall-clock time of each master kill

    def start(self) -> None:
        self.set.start()
        self._aof(self.set.replica)

    @staticmethod
    def _aof(server: RedisServer) -> None:
        # The set starts the replica with --replicaof alone; the soak wants it on AOF too.
        server.client().config_set("appendonly", "yes")
        server.client().config_set("appendfsync", "always")

    def settings(self) -> dict[str, str]:
        return {"RELAY_REDIS_URL": "redis://127.0.0.1:6379/0",  # the database; host unused
                "RELAY_REDIS_SENTINELS": self.set.addresses,
                "RELAY_REDIS_SENTINEL_MASTER": MASTER_NAME,
                "RELAY_REDIS_WAIT_REPLICAS": "1"}  # fmt: skip

    def client(self) -> redis.Redis:
        port = self.set.sentinels[0].master_port()
        return redis.Redis(port=port, socket_timeout=5)

    def fault(self) -> dict[str, object]:
        """SIGKILL the master, wait for the promotion, rejoin the old one as a replica."""
        self.failovers.append(time.time())
        killed, promoted = self.set.kill_master()
        self.set.rejoin(killed, promoted)
        self._aof(killed)
        return {"promoted": promoted.port, "epoch": self.set.failovers()}

    def close(self) -> None:
        self.set.close()
