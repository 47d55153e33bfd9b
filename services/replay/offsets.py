"""Offsets for times, and where a partition ends, on any Kafka-protocol broker.

The broker's own offsets-for-times answer is kept when it is usable (real Kafka). Tansu answers
timestamp -1 when it does not know, so then the offset is found by binary search over the
partition (seek, fetch one record, compare its timestamp). The end of a partition is the high
watermark of a fetch response: ListOffsets 'latest' is not reliable on Tansu.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from ..runtime.errors import InfrastructureError

TimestampAt = Callable[[int], Awaitable[int | None]]


async def first_at_or_after(lo: int, hi: int, target_ms: int, timestamp_at: TimestampAt) -> int:
    """The smallest offset in [lo, hi) whose record is stamped at or after ``target_ms`` (hi if
    none), for timestamps that grow with offsets. ``timestamp_at(o)`` stamps the first record at
    or after ``o`` (None: none before hi). About log2(hi - lo) lookups."""
    while lo < hi:
        mid = (lo + hi) // 2
        stamp = await timestamp_at(mid)
        if stamp is None or stamp >= target_ms:
            hi = mid
        else:
            lo = mid + 1
    return lo


def usable(answer_timestamp: int | None) -> bool:
    """Whether the broker's offsets-for-times answer can be trusted (Tansu says -1)."""
    return answer_timestamp is not None and answer_timestamp >= 0


async def high_watermarks(consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition],
                          timeout: float = 10.0) -> dict[TopicPartition, int]:
    """Each partition's high watermark, read from a fetch (the consumer is reassigned)."""
    if not tps:
        return {}
    assign(consumer, tps)
    await consumer.seek_to_beginning(*tps)
    give_up = time.monotonic() + timeout
    while any(consumer.highwater(tp) is None for tp in tps):
        if time.monotonic() > give_up:
            raise InfrastructureError(f"no fetch answer for {tps[0].topic} within {timeout:.0f}s; "
                                      "is the broker up?")
        await consumer.getmany(timeout_ms=200, max_records=1)
    return {tp: int(consumer.highwater(tp) or 0) for tp in tps}


async def offsets_for_time(consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition],
                           when: datetime, highs: dict[TopicPartition, int]
                           ) -> dict[TopicPartition, int]:
    """Per partition, the first offset stamped at or after ``when`` (the high watermark if none).

    ``consumer`` has no group; it is reassigned partition by partition while searching.
    """
    target = int(when.timestamp() * 1000)
    assign(consumer, tps)
    answers = await consumer.offsets_for_times({tp: target for tp in tps})
    starts = await consumer.beginning_offsets(list(tps))
    result: dict[TopicPartition, int] = {}
    for tp in tps:
        answer = answers.get(tp)
        if answer is None:  # real Kafka: nothing stamped that late
            result[tp] = highs[tp]
        elif usable(answer.timestamp):
            result[tp] = min(answer.offset, highs[tp])
        else:
            result[tp] = await search_offset(consumer, tp, starts.get(tp, 0), highs[tp], target)
    assign(consumer, tps)
    return result


async def search_offset(consumer: AIOKafkaConsumer, tp: TopicPartition, lo: int, hi: int,
                        target: int) -> int:
    """The first offset of ``tp`` in [lo, hi) stamped at or after ``target`` (ms), by binary
    search (the consumer has no group and is reassigned to ``tp``)."""
    assign(consumer, [tp])

    async def timestamp_at(offset: int) -> int | None:
        consumer.seek(tp, offset)
        for _ in range(10):  # a record exists below hi; the fetch may take a moment
            got = await consumer.getmany(tp, timeout_ms=500, max_records=1)
            records = got.get(tp, [])
            if records:
                return records[0].timestamp if records[0].offset < hi else None
            if await consumer.position(tp) >= hi:
                return None
            await asyncio.sleep(0)
        raise InfrastructureError(f"no record of {tp.topic}[{tp.partition}] at offset {offset} "
                                  "arrived; is the broker up?")

    return await first_at_or_after(lo, hi, target, timestamp_at)


def assign(consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition]) -> None:
    """Assign ``tps`` unless they are already the assignment: on Apache Kafka, assigning the
    same partitions again while fetched records are buffered left the next seek_to_beginning
    waiting forever (aiokafka 0.14)."""
    if consumer.assignment() != set(tps):
        consumer.assign(list(tps))
