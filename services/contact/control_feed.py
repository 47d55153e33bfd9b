"""The control feed: applies the control topic to the control tables continuously, not per tick.

It reads every partition (no consumer group) from the offsets stored with the state, so each
event is applied exactly once however many instances run. ``sync`` waits until everything
published so far is applied: the send path calls it once per control window, then checks each
send against the tables it read plus the events applied since (``since``), held in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from events import ControlEvent, EventDecodeError, Topic, decode

from ..runtime import kafka_clients
from ..runtime.errors import InfrastructureError
from ..runtime.partitions import topic_partitions
from . import controls

log = logging.getLogger(__name__)


class ControlFeed:
    """Tails the control topic into the control tables."""

    POLL_MS = 100

    def __init__(self, pool: asyncpg.Pool, bootstrap_servers: str, prefix: str,
                 instance_id: str) -> None:
        self.pool = pool
        self.topic = Topic.CONTROL.physical(prefix)
        self.bootstrap_servers = bootstrap_servers
        self.instance_id = instance_id
        self.applied: dict[int, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        # A second client just for end offsets: on the feed's own connection a ListOffsets
        # request queues behind the long-poll fetch, which cost ~100 ms on every send.
        self._ends: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._progress = asyncio.Event()
        # Events applied lately, for sends already past their window's table read; the oldest
        # go once there are more than RECENT (a window is short: it never needs them).
        self._recent: list[ControlEvent] = []
        self._dropped = 0

    RECENT = 10_000

    def mark(self) -> int:
        """A position in the stream of applied events, for ``since``."""
        return self._dropped + len(self._recent)

    def since(self, mark: int) -> Sequence[ControlEvent]:
        """Events applied after ``mark`` (all still held, if some were dropped since)."""
        return self._recent[max(0, mark - self._dropped):]

    def lost(self, mark: int) -> bool:
        """Whether some events applied after ``mark`` are no longer held (``since`` lacks them)."""
        return mark < self._dropped

    def _remember(self, batch: Sequence[controls.Positioned]) -> None:
        self._recent.extend(item.event for item in batch if item.event is not None)
        if len(self._recent) > 2 * self.RECENT:
            drop = len(self._recent) - self.RECENT
            del self._recent[:drop]
            self._dropped += drop

    async def start(self) -> None:
        self._consumer = kafka_clients.consumer(
            bootstrap_servers=self.bootstrap_servers, group_id=None, enable_auto_commit=False,
            client_id=f"leadflow-contact-control-{self.instance_id}", fetch_max_wait_ms=100,
            auto_offset_reset="earliest")
        self._ends = kafka_clients.consumer(
            bootstrap_servers=self.bootstrap_servers, group_id=None, enable_auto_commit=False,
            client_id=f"leadflow-contact-control-ends-{self.instance_id}")
        try:
            await self._consumer.start()
            await self._ends.start()
            partitions = await self._partitions()
        except KafkaError as exc:
            raise InfrastructureError(f"cannot read {self.topic} at {self.bootstrap_servers}: "
                                      f"{exc}") from exc
        self._consumer.assign([TopicPartition(self.topic, p) for p in partitions])
        await self._seek_to_stored()
        self._task = asyncio.create_task(self._loop(), name="contact-control-feed")

    async def _partitions(self) -> list[int]:
        assert self._consumer is not None
        found = (await topic_partitions(self._consumer, [self.topic]))[self.topic]
        if found:
            return found
        raise InfrastructureError(f"topic {self.topic} does not exist; run `leadflow topics create`")

    async def _seek_to_stored(self) -> None:
        assert self._consumer is not None
        stored = await controls.offsets(self.pool, self.topic)
        for tp in self._consumer.assignment():
            offset = stored.get(tp.partition, 0)
            self._consumer.seek(tp, offset)
            self.applied[tp.partition] = offset

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
        if self._ends is not None:
            await self._ends.stop()

    async def _loop(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                records = await self._consumer.getmany(timeout_ms=self.POLL_MS)
                batch = [controls.Positioned(r.topic, r.partition, r.offset, _decode(r.value))
                         for part in records.values() for r in part]
                if batch:
                    stored = await controls.apply(self.pool, batch)
                    self._remember(batch)
                    self.applied.update(stored)
                    self._progress.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep the feed alive; sync() reports lag
                log.warning("control feed: %s; retrying from the stored offsets", exc,
                            extra={"action": "control_feed_error"})
                await asyncio.sleep(1)
                with contextlib.suppress(Exception):
                    await self._seek_to_stored()

    async def sync(self, timeout: float) -> None:
        """Return once every control event published before this call is applied.

        Raises InfrastructureError after ``timeout`` seconds: sending with stale controls would
        risk contacting someone who was just suppressed."""
        assert self._consumer is not None and self._ends is not None
        try:
            ends = await self._ends.end_offsets(list(self._consumer.assignment()))
        except KafkaError as exc:
            raise InfrastructureError(f"cannot read the end of {self.topic}: {exc}") from exc
        give_up = time.monotonic() + timeout
        while any(self.applied.get(tp.partition, 0) < end for tp, end in ends.items()):
            remaining = give_up - time.monotonic()
            if remaining <= 0:
                raise InfrastructureError(
                    f"the control topic {self.topic} is not applied after {timeout:.0f}s; no "
                    "message is sent until it is (check the database and the broker)")
            self._progress.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._progress.wait(), min(remaining, 0.05))


def _decode(value: bytes | None) -> ControlEvent | None:
    try:
        event = decode(value or b"")
    except EventDecodeError as exc:
        log.warning("undecodable message on the control topic skipped: %s", exc,
                    extra={"action": "control_undecodable"})
        return None
    if not isinstance(event, ControlEvent):
        log.warning("%s does not belong on the control topic; skipped", event.type,
                    extra={"action": "control_misplaced"})
        return None
    return event
