"""RESP encoding of commands, for the paths that write to a connection themselves (the
ingest micro-batch): redis-py's own encoder costs more per command than the whole append."""

from __future__ import annotations

from collections.abc import Sequence

Arg = str | bytes | int
Command = tuple[Arg, ...]


def encode(args: Sequence[bytes]) -> bytes:
    """RESP bulk strings of ``args`` (without the array header)."""
    return b"".join([b"$%d\r\n%b\r\n" % (len(arg), arg) for arg in args])


def encode_command(command: Command) -> bytes:
    """One command as a RESP array."""
    return b"*%d\r\n%b" % (len(command), encode([as_bytes(arg) for arg in command]))


def finish(head: bytes, head_count: int, tail: Sequence[bytes]) -> bytes:
    """A command whose first ``head_count`` arguments are ``head``, already encoded (see
    :func:`encode`), followed by ``tail``."""
    return b"*%d\r\n%b%b" % (head_count + len(tail), head, encode(tail))


def as_bytes(arg: Arg) -> bytes:
    return arg if isinstance(arg, bytes) else str(arg).encode()
