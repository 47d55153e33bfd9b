"""Which partitions a topic has, asked of the cluster itself.

``AIOKafkaConsumer.partitions_for_topic`` answers from the client's metadata cache, which only
holds the topics the client tracks; ``consumer.topics()`` fetches fresh metadata but does not
store it. Tansu answers a metadata request for no topics with every topic, so the cache looked
complete there; Apache Kafka answers it with none. Every lookup goes through here instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer

log = logging.getLogger(__name__)


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


#: Longest pause between two looks for missing topics, and between two reminders in the log.
MAX_TOPIC_WAIT = 10.0
TOPIC_REMINDER_EVERY = 300.0


def next_topic_wait(previous: float) -> float:
    """The pause before the next look for missing topics: doubling from 1 s, capped."""
    return min(MAX_TOPIC_WAIT, max(1.0, previous * 2))


async def wait_for_topics(consumer: AIOKafkaConsumer, topics: Iterable[str], who: str) -> None:
    """Return once every topic exists. Until then: one line saying which are missing and what
    to run, a reminder every few minutes, and looks spaced out (never a flood of errors); the
    service goes on by itself once `leadflow topics create` has made them."""
    names = list(topics)
    delay, said_at = 0.0, None
    while True:
        found = await topic_partitions(consumer, names, wait=0)
        missing = [name for name, partitions in found.items() if not partitions]
        if not missing:
            if said_at is not None:
                log.info("%s: topics %s found; going on", who, ", ".join(names),
                         extra={"action": "topics_found"})
            return
        now = time.monotonic()
        if said_at is None or now - said_at >= TOPIC_REMINDER_EVERY:
            log.error("%s: topics %s do not exist on the broker; run `leadflow topics create` "
                      "(waiting for them, looking every %.0fs at most)", who, ", ".join(missing),
                      MAX_TOPIC_WAIT, extra={"action": "topics_missing"})
            said_at = now
        delay = next_topic_wait(delay)
        await asyncio.sleep(delay)
