"""Consumer-aware trimming and stream health on a real Redis Cluster: streams on different
masters, each trimmed below its own groups' floor, sampled in one pass."""

from __future__ import annotations

from redis.asyncio import Redis

from relay.streams.health import sample
from relay.streams.trim import Retention, Trimmer
from tests.support.entry_schemas import relay_fields
from tests.support.redis_cluster import RedisCluster

STREAMS = ("anyformat:events", "anyformat:events:extraction.completed")


async def test_each_shard_is_trimmed_below_its_own_floor(
    cluster_text_client: Redis, cluster: RedisCluster
) -> None:
    sync = cluster.client()
    assert len({sync.get_node_from_key(stream).port for stream in STREAMS}) == 2
    lagging, idle = STREAMS
    await cluster_text_client.xgroup_create(lagging, "billing", id="0", mkstream=True)
    written = {stream: [await cluster_text_client.xadd(stream, relay_fields(n)) for n in range(300)]
               for stream in STREAMS}  # fmt: skip
    trimmer = Trimmer(cluster_text_client, Retention(maxlen=50), lambda: STREAMS, budget=40)

    await trimmer.trim_all()
    assert await cluster_text_client.xlen(lagging) == 300
    assert await cluster_text_client.xlen(idle) == 50

    reply = await cluster_text_client.xreadgroup("billing", "c1", {lagging: ">"}, count=1000)
    assert [entry_id for entry_id, _ in reply[0][1]] == written[lagging]
    await cluster_text_client.xack(lagging, "billing", *written[lagging][:200])
    [health] = [row for row in await sample(cluster_text_client, STREAMS) if row.stream == lagging]
    assert (health.length, health.groups[0].pending, health.groups[0].lag) == (300, 100, 0)

    await trimmer.trim_all()
    assert [entry_id for entry_id, _ in await cluster_text_client.xrange(lagging)] == written[
        lagging
    ][200:]
