"""An in-process Redis-compatible server (fakeredis with Lua) for `relay dev` only.

It keeps everything in memory, in this process: it is not Redis, and never for production.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import fakeredis

EMBEDDED_VERSION = "7.4.0"


def _teach_info() -> None:
    """fakeredis has no ``INFO``; the relay asks it for the server's version once at
    start-up and, refused, logged ``redis_version_unknown`` at every ``relay dev``. The
    embedded server answers the ``server`` section (the one the relay reads) instead."""
    from fakeredis._commands import SUPPORTED_COMMANDS, command
    from fakeredis._socket._fakesocket import FakeSocket

    if "info" in SUPPORTED_COMMANDS:  # a fakeredis that has its own
        return

    def info(self: FakeSocket, *sections: bytes) -> bytes:
        return (
            f"# Server\r\nredis_version:{EMBEDDED_VERSION}\r\nredis_mode:standalone\r\n"
            "# embedded: fakeredis, in memory, relay dev only\r\n"
        ).encode()

    FakeSocket.info = command(name="info", fixed=(), repeat=(bytes,))(info)  # type: ignore[attr-defined]


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
    _teach_info()
    server = fakeredis.TcpFakeServer((host, port), server_type="redis")
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="embedded-redis", daemon=True)
    thread.start()
    return EmbeddedRedis(server, thread)
