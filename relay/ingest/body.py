"""Reading a delivery's body: bounded in size, in time (by the connection) and in memory.

Bodies are read before a delivery takes one of the ``RELAY_MAX_IN_FLIGHT`` slots, so a
sender that trickles its body holds no slot. What it can hold instead is memory: every
body byte received but not yet handled is counted against one budget per process, taken
as bytes *arrive* (a declared ``Content-Length`` reserves nothing), so a thousand slow
bodies hold what they actually sent and a genuine delivery still finds room.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError


class BodyTooLarge(Exception):
    pass


class BodyIncomplete(Exception):
    """The sender went away before the whole body arrived."""


class BodyMalformed(Exception):
    """The body's framing is broken (a bad chunk size, a truncated chunk…)."""


class ClientTooSlow(ConnectionError):
    """The request's headers and body took longer than ``RELAY_CLIENT_TIMEOUT``."""


class BodyBudgetExhausted(Exception):
    """Bodies being received already hold all the memory the budget allows."""


class BodyBudget:
    """Bytes of request bodies held at once by this process, across all connections."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> None:
        if self.held + size > self.limit:
            raise BodyBudgetExhausted
        self.held += size

    def give_back(self, size: int) -> None:
        self.held -= size


class BodyReader:
    """Reads one request's body against the budget; ``async with`` gives the bytes back."""

    def __init__(self, budget: BodyBudget, max_bytes: int) -> None:
        self._budget = budget
        self._max = max_bytes
        self._held = 0

    async def read(self, request: web.BaseRequest) -> bytes:
        """The body, never reading more than ``max_bytes + 1`` bytes, whatever the framing.

        Raises :class:`BodyTooLarge`, :class:`BodyIncomplete`, :class:`BodyMalformed`,
        :class:`ClientTooSlow` or :class:`BodyBudgetExhausted`.
        """
        length = request.content_length
        if length is not None and length > self._max:
            raise BodyTooLarge
        content = request.content
        chunks: list[bytes] = []
        try:
            while self._held != length and (
                chunk := await content.read(self._max + 1 - self._held)
            ):
                self._budget.take(len(chunk))
                self._held += len(chunk)
                if self._held > self._max:
                    raise BodyTooLarge
                chunks.append(chunk)
        except ClientTooSlow:
            raise
        except RequestPayloadError:
            raise BodyMalformed from None
        except (asyncio.IncompleteReadError, ConnectionError):
            raise BodyIncomplete from None
        if length is not None and self._held != length:
            raise BodyIncomplete
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def __aenter__(self) -> BodyReader:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._budget.give_back(self._held)
        self._held = 0
