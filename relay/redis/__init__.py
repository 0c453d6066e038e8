"""The Redis boundary: every redis-py internal, every way of running Lua and every key
format of the relay lives in this package and nowhere else.

- ``client``: the one client a process uses (single server, Sentinel, Cluster), its version
  check, and ``Redis`` for the rest of the relay's type hints; ``cluster``: hash slots and
  the masters serving them; ``errors``: the redis-py errors the rest of the relay catches;
- ``keys``: the key layout, every key the relay reads or writes, spelled once;
- ``scripts`` and ``lua/``: the one registry of Lua scripts, run one way (``EVALSHA``, the
  script loaded again on ``NOSCRIPT``);
- ``functions`` and ``lua/relay_v1.lua``: the Redis Functions library of the calls any
  language's worker makes (dead letter, replay), loaded on every master, called by ``FCALL``;
- ``resp``, ``pipeline``, ``batch``: commands in one round trip: a pipeline, and the
  micro-batch of the ingest path on one pooled connection with hand-encoded RESP;
- ``replication``: replica acknowledgement (the fence and ``WAIT``).

The domain packages (``streams``, ``worker``, ``registration``, ``reconcile``, ``ingest``)
call these; the write path turns a Redis failure into the streams' own errors
(``relay.streams.errors``), so the ingest never sees a redis-py exception.
``tests/redis/test_boundary.py`` holds the line.
This module imports nothing, so importing ``relay.redis.keys`` costs no redis-py import.
"""
