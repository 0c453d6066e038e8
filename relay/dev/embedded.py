"""An in-process Redis-compatible server (fakeredis with Lua) for `relay dev` only.

It keeps everything in memory, in this process: it is not Redis, and never for production.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import fakeredis


@dataclass
class EmbeddedRedis:
    server: fakeredis.TcpFakeServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"redis://{host!s}:{port}/0"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def start_embedded_redis(host: str = "127.0.0.1", port: int = 0) -> EmbeddedRedis:
    server = fakeredis.TcpFakeServer((host, port), server_type="redis")
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="embedded-redis", daemon=True)
    thread.start()
    return EmbeddedRedis(server, thread)
