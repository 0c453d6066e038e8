"""A real Redis Cluster (three masters, one replica each) on free loopback ports."""

from __future__ import annotations

import functools
import shutil
import subprocess

import redis

from tests.support.redis_server import RedisServer, free_cluster_port
from tests.support.waiting import wait_for_sync


class RedisCluster:
    def __init__(self, masters: int = 3, replicas: int = 1) -> None:
        self.nodes = [
            RedisServer("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                        "--cluster-node-timeout", "2000", port=free_cluster_port())
            for _ in range(masters * (1 + replicas))
        ]  # fmt: skip
        self.replicas = replicas

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed")
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas",
             str(self.replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        self.wait_ok()
        self.wait_replicated()
        return self

    def wait_replicated(self, within: float = 30) -> None:
        """Until every master's replicas have synced (``WAIT`` answers), so that tests of
        replica acknowledgement start from a healthy cluster."""
        for node in self.nodes:
            wait_for_sync(
                functools.partial(self._synced, node),
                what=f"the replicas of {node.port} synced",
                within=within,
            )

    def _synced(self, node: RedisServer) -> bool:
        client = node.client()
        if client.execute_command("ROLE")[0] != b"master":
            return True
        return bool(client.execute_command("WAIT", self.replicas, 100) >= self.replicas)

    def wait_ok(self, within: float = 30) -> None:
        def ok() -> bool:
            infos = [node.client().execute_command("CLUSTER", "INFO") for node in self.nodes]
            return all(b"cluster_state:ok" in (i if isinstance(i, bytes) else i.encode())
                       for i in infos)  # fmt: skip

        wait_for_sync(ok, what="cluster_state:ok on every node", within=within, interval=0.2)

    def client(self) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.nodes[0].port)

    def replica_of(self, key: str) -> RedisServer:
        """A replica of the master that serves ``key``'s slot."""
        client = self.client()
        master = client.get_node_from_key(key)
        for node in self.nodes:
            role = node.client().execute_command("ROLE")
            if role[0] == b"slave" and int(role[2]) == master.port:
                return node
        raise RuntimeError(f"no replica for {key}")

    def close(self) -> None:
        for node in self.nodes:
            node.close()
