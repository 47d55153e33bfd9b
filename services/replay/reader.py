"""Reading fixed offset ranges of a topic with a group-less consumer (the live group's
positions are never touched)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from .errors import ReplayError
from .store import Range


class RangeReader:
    """Yields the records of each partition's [next, end) range, in batches."""

    #: Seconds without a record while ranges are unfinished before the reader gives up.
    STALL_SECONDS = 60.0

    def __init__(self, consumer: AIOKafkaConsumer, ranges: Sequence[Range]) -> None:
        self.consumer = consumer
        self.ranges = {TopicPartition(r.topic, r.partition): r for r in ranges}

    @property
    def done(self) -> bool:
        return all(r.done for r in self.ranges.values())

    def total(self) -> int:
        return sum(r.end - r.start for r in self.ranges.values())

    def progress(self) -> int:
        return sum(min(r.next, r.end) - r.start for r in self.ranges.values())

    def start(self) -> None:
        open_ = [tp for tp, r in self.ranges.items() if not r.done]
        self.consumer.assign(open_)
        for tp in open_:
            self.consumer.seek(tp, self.ranges[tp].next)

    async def read(self, max_records: int) -> tuple[list[ConsumerRecord], dict[TopicPartition, int]]:
        """The next records inside the ranges, and where each touched partition continues once
        they are processed (apply it with ``advance`` after recording the batch)."""
        give_up = time.monotonic() + self.STALL_SECONDS
        while not self.done:
            got = await self.consumer.getmany(timeout_ms=500, max_records=max_records)
            records: list[ConsumerRecord] = []
            nexts: dict[TopicPartition, int] = {}
            for tp, batch in got.items():
                end = self.ranges[tp].end
                inside = [r for r in batch if r.offset < end]
                records += inside
                nexts[tp] = end if len(inside) < len(batch) else inside[-1].offset + 1
                if nexts[tp] >= end:
                    self.consumer.pause(tp)
            if got:
                return records, nexts
            for tp, r in self.ranges.items():  # a range may end on a gap (nothing left to read)
                if not r.done and await self.consumer.position(tp) >= r.end:
                    nexts[tp] = r.end
            if nexts:
                return [], nexts
            if time.monotonic() > give_up:
                waiting = [f"{tp.topic}[{tp.partition}]" for tp, r in self.ranges.items()
                           if not r.done]
                raise ReplayError(f"no records arrived for {', '.join(waiting)} within "
                                  f"{self.STALL_SECONDS:.0f}s; is the broker up? Run the same "
                                  "command again to resume")
        return [], {}

    def positions(self, nexts: dict[TopicPartition, int]) -> list[Range]:
        """The ranges of the touched partitions as they will be once the batch is recorded."""
        return [Range(tp.topic, tp.partition, self.ranges[tp].start, self.ranges[tp].end,
                      max(self.ranges[tp].next, n)) for tp, n in nexts.items()]

    def advance(self, nexts: dict[TopicPartition, int]) -> None:
        for tp, n in nexts.items():
            self.ranges[tp].next = max(self.ranges[tp].next, n)
