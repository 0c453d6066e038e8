"""HTTP/1.1 over raw sockets: for requests no HTTP client library would send."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


@dataclass
class RawAnswer:
    data: bytes  # every byte the server sent before it closed the connection
    closed: bool  # the server closed the connection (EOF or reset)

    @property
    def statuses(self) -> list[int]:
        return [int(status) for status in STATUS_LINE.findall(self.data)]

    @property
    def headers(self) -> str:
        return self.data.split(b"\r\n\r\n", 1)[0].decode("latin-1")


def request(
    head_lines: list[str], body: bytes = b"", *, path: str = "/webhooks/anyformat"
) -> bytes:
    """A request with exactly these header lines (no Host or length added)."""
    head = "".join(f"{line}\r\n" for line in [f"POST {path} HTTP/1.1", *head_lines])
    return head.encode("latin-1") + b"\r\n" + body


def signed_request(body: bytes, signature: dict[str, str], *extra: str) -> bytes:
    """A well-formed, correctly signed delivery, with ``extra`` header lines."""
    lines = ["Host: relay", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in signature.items()]
    return request([*lines, *extra], body)


async def exchange(port: int, data: bytes, *, deadline: float = 10.0) -> RawAnswer:
    """Send ``data``, half-close nothing, and read until the server closes the connection
    (or ``deadline`` seconds pass: then ``closed`` is False)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = bytearray()
    closed = False
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(deadline):
            while chunk := await reader.read(65536):
                received += chunk
            closed = True
    except (ConnectionError, TimeoutError) as exc:
        closed = isinstance(exc, ConnectionError)
    finally:
        writer.close()
    return RawAnswer(bytes(received), closed)
