"""Does the broker's log still hold what the read models were folded from?

The projector stores, per partition, the offset it folded to. A broker that lost its data or
was replaced by an empty one ends before those offsets: the read models then show leads, runs
and sends the log no longer has, and replays or rebuilds would silently produce less.
`leadflow status` asks this on every call; the comparison itself is pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka import TopicPartition

from ..pipeline.settings import Settings
from ..projector.store import stored_offsets
from ..runtime import kafka_clients
from ..runtime.db import READ_SCHEMA, connect, quote_ident
from ..runtime.partitions import topic_partitions
from .offsets import high_watermarks


@dataclass(frozen=True, slots=True)
class Shortfall:
    """One partition whose log ends before the offset the read models were folded to
    (``log_end`` None: the topic or partition is gone)."""

    topic: str
    partition: int
    folded_to: int
    log_end: int | None

    def describe(self) -> str:
        where = f"{self.topic}[{self.partition}]"
        if self.log_end is None:
            return f"{where}: missing on the broker; the read models were folded to offset " \
                   f"{self.folded_to:,}"
        return f"{where}: the log ends at offset {self.log_end:,}, the read models were " \
               f"folded to {self.folded_to:,} ({self.folded_to - self.log_end:,} events gone)"


def shortfalls(folded: Mapping[tuple[str, int], int],
               ends: Mapping[tuple[str, int], int | None]) -> list[Shortfall]:
    """Partitions the read models were folded past the log's end (or from a partition gone)."""
    out = []
    for (topic, partition), offset in sorted(folded.items()):
        end = ends.get((topic, partition))
        if offset > 0 and (end is None or end < offset):
            out.append(Shortfall(topic, partition, offset, end))
    return out


async def log_shortfalls(settings: Settings) -> list[Shortfall]:
    """Compare the projector's stored offsets with the broker's log ends, now."""
    async with connect(settings.database_url) as conn:
        await conn.execute(f"SET search_path TO {quote_ident(READ_SCHEMA)}")
        folded = await stored_offsets(conn)
    if not folded:
        return []
    consumer = kafka_clients.consumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                group_id=None, enable_auto_commit=False,
                                client_id="leadflow-status")
    await kafka_clients.start(consumer)
    try:
        found = await topic_partitions(consumer, sorted({t for t, _ in folded}), wait=0)
        tps = [TopicPartition(t, p) for t, ps in found.items() for p in ps]
        highs = await high_watermarks(consumer, tps)
    finally:
        await consumer.stop()
    ends: dict[tuple[str, int], int | None] = {(tp.topic, tp.partition): high
                                               for tp, high in highs.items()}
    return shortfalls(folded, ends)
