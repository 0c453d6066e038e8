"""A real Sentinel deployment on free loopback ports: a master, one replica and three
sentinels (quorum two) with fast failure detection, as the common Helm charts deploy it."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import redis

from tests.support.redis_server import RedisServer, free_port
from tests.support.waiting import wait_for_sync

MASTER_NAME = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 4000
# A server restarting, loading, or changing role: ask again.
SETTLING = (redis.ConnectionError, redis.TimeoutError, redis.ResponseError)


class Sentinel:
    """One ``redis-server --sentinel`` process (it rewrites its own config file)."""

    def __init__(self, master_port: int, password: str | None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.port = free_port()
        self.password = password
        self.dir = Path(tempfile.mkdtemp(prefix="relay-sentinel-"))
        self.config = self.dir / "sentinel.conf"
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self.dir}",
            f"logfile {self.dir / 'sentinel.log'}",
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2",
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {MASTER_NAME} 1",
        ]
        if password:
            lines.append(f"requirepass {password}")
            lines.append(f"sentinel sentinel-pass {password}")  # the sentinels among themselves
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password, socket_timeout=5)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, str(self.config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for_sync(self._answers, what="the sentinel answering", within=10, ignoring=SETTLING)

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"sentinel exited: {self.process.stderr.read()!r}")  # type: ignore[union-attr]
        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            return False

    def master_port(self) -> int:
        _, port = self.client().sentinel_get_master_addr_by_name(MASTER_NAME)
        return int(port)

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisSentinelSet:
    """Master, replica and three sentinels; ``kill_master`` SIGKILLs the master and waits
    until the sentinels have promoted the replica."""

    def __init__(self, *, sentinel_password: str | None = None) -> None:
        self.master = RedisServer()
        self.replica = RedisServer()
        self.sentinel_password = sentinel_password
        self.sentinels: list[Sentinel] = []

    @property
    def addresses(self) -> str:
        """``RELAY_REDIS_SENTINELS``."""
        return ",".join(sentinel.address for sentinel in self.sentinels)

    def start(self) -> RedisSentinelSet:
        self.master.start()
        self.replica.extra_args = ("--replicaof", "127.0.0.1", str(self.master.port))
        self.replica.start()
        self.wait_replicated(self.master)
        self.sentinels = [Sentinel(self.master.port, self.sentinel_password) for _ in range(3)]
        for sentinel in self.sentinels:
            sentinel.start()
        # Every sentinel has found the replica and the other sentinels: a failover can run.
        wait_for_sync(
            self._all_known, what="the sentinels knowing each other", within=30, ignoring=SETTLING
        )
        return self

    def _all_known(self) -> bool:
        for sentinel in self.sentinels:
            state = sentinel.client().sentinel_master(MASTER_NAME)
            if state["num-slaves"] < 1 or state["num-other-sentinels"] < 2:
                return False
        return True

    def wait_replicated(self, master: RedisServer) -> None:
        """Until a replica acknowledges the master's writes (its sync is done)."""
        client = master.client()
        wait_for_sync(
            lambda: client.execute_command("WAIT", 1, 100) >= 1,
            what="a replica synced",
            within=30,
            ignoring=SETTLING,
        )

    def current_master(self) -> RedisServer:
        port = self.sentinels[0].master_port()
        return self.master if port == self.master.port else self.replica

    def kill_master(self) -> tuple[RedisServer, RedisServer]:
        """SIGKILL the master; returns (killed, promoted) once every sentinel names the
        promoted one and it answers as a master."""
        killed = self.current_master()
        survivor = self.replica if killed is self.master else self.master
        killed.kill()

        def promoted() -> bool:
            if any(s.master_port() != survivor.port for s in self.sentinels):
                return False
            return survivor.client().execute_command("ROLE")[0] == b"master"

        wait_for_sync(
            promoted,
            what="every sentinel naming the promoted replica",
            within=60,
            ignoring=SETTLING,
        )
        return killed, survivor

    def rejoin(self, server: RedisServer, master: RedisServer) -> None:
        """Restart a killed server as a replica of ``master`` (what an operator's chart
        does) and wait until whichever server is master then has a synced replica (on a
        loaded machine the sentinels may fail over once more meanwhile)."""
        server.extra_args = ("--replicaof", "127.0.0.1", str(master.port))
        server.start()
        wait_for_sync(
            lambda: self._replicated(self.settled_master()),
            what="a synced replica of the settled master",
            within=60,
            ignoring=SETTLING,
        )

    @staticmethod
    def _replicated(master: RedisServer) -> bool:
        return int(master.client().execute_command("WAIT", 1, 100)) >= 1

    def settled_master(self, within: float = 60) -> RedisServer:
        """The server every sentinel names master, once it answers as one."""
        found: list[RedisServer] = []

        def settled() -> bool:
            ports = {sentinel.master_port() for sentinel in self.sentinels}
            if len(ports) != 1:
                return False
            [port] = ports
            server = self.master if port == self.master.port else self.replica
            if server.client().execute_command("ROLE")[0] != b"master":
                return False
            found[:] = [server]
            return True

        wait_for_sync(
            settled, what="the sentinels agreeing on a master", within=within, ignoring=SETTLING
        )
        return found[0]

    def failovers(self) -> int:
        """The master's configuration epoch: one more for every failover so far."""
        return int(self.sentinels[0].client().sentinel_master(MASTER_NAME)["config-epoch"])

    def close(self) -> None:
        for sentinel in self.sentinels:
            sentinel.close()
        self.replica.close()
        self.master.close()
