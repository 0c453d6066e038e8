"""The Redis boundary: every redis-py internal, every way of running Lua and every key
format of the relay lives in this package and nowhere else.

- ``client``: the one client a process uses (single server, Sentinel, Cluster), its version
  check, and the redis-py names the rest of the relay may use (``Redis``, the errors);
- ``keys``: the key layout, every key the relay reads or writes, spelled once;
- ``scripts`` and ``lua/``: the one registry of Lua scripts, run one way (``EVALSHA``, the
  script loaded again on ``NOSCRIPT``);
- ``functions`` and ``lua/relay_v1.lua``: the Redis Functions library of the calls any
  language's worker makes (dead letter, replay), loaded on every master, called by ``FCALL``;
- ``resp``, ``pipeline``, ``batch``: commands in one round trip: a pipeline, and the
  micro-batch of the ingest path on one pooled connection with hand-encoded RESP;
- ``replication``: replica acknowledgement (the fence and ``WAIT``).

The domain packages (``streams``, ``worker``, ``registration``, ``reconcile``, ``ingest``)
call these and raise their own errors; ``tests/redis/test_boundary.py`` holds the line.
This module imports nothing, so importing ``relay.redis.keys`` costs no redis-py import.
"""
