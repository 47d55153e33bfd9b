"""Which partitions a topic has, asked of the cluster itself.

``AIOKafkaConsumer.partitions_for_topic`` answers from the client's metadata cache, which only
holds the topics the client tracks; ``consumer.topics()`` fetches fresh metadata but does not
store it. Tansu answers a metadata request for no topics with every topic, so the cache looked
complete there; Apache Kafka answers it with none. Every lookup goes through here instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer


async def topic_partitions(consumer: AIOKafkaConsumer, topics: Iterable[str],
                           wait: float = 5.0) -> dict[str, list[int]]:
    """Partition ids of each topic (empty when it does not exist), from fresh metadata; waits up
    to ``wait`` seconds for topics just created to appear."""
    names = list(topics)
    give_up = time.monotonic() + wait
    while True:
        # the client's one call that returns fresh metadata for every topic (public API has none)
        cluster = await consumer._client.fetch_all_metadata()
        found = {name: sorted(cluster.partitions_for_topic(name) or ()) for name in names}
        if all(found.values()) or time.monotonic() >= give_up:
            return found
        await asyncio.sleep(0.1)
