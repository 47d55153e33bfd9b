"""The active clock reads back clock.ticks and jobs.events: it records every tick on the log,
notes how runs end, owes retries for failed runs and pauses a job that keeps failing.

Partitions are assigned by hand and the positions live in clock_offsets, written in the same
transaction as what they produced, so a restart or a standby resumes exactly where it was.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from events import (
    EventDecodeError,
    JobCompleted,
    JobFailed,
    JobName,
    RunStatus,
    TickEmitted,
    Topic,
    decode,
)
from services.runtime.config import PlatformConfig
from services.runtime.errors import InfrastructureError

from ..runtime import kafka_clients
from ..runtime.partitions import topic_partitions
from . import store
from .retries import retry_for, should_pause

log = logging.getLogger(__name__)

#: Reason recorded when the clock pauses a job itself (a successful run lifts only this one).
FAILURES_REASON = "failures"


class LogFollower:
    """Folds clock.ticks and jobs.events into the clock's tables."""

    POLL_MS = 200

    def __init__(self, bootstrap_servers: str, prefix: str, config: PlatformConfig,
                 pool: asyncpg.Pool, on_change: Callable[[], None] = lambda: None) -> None:
        self.config = config
        self.pool = pool
        self.on_change = on_change
        self.ticks_topic = Topic.CLOCK_TICKS.physical(prefix)
        self.topics = [self.ticks_topic, Topic.JOBS_EVENTS.physical(prefix)]
        self.bootstrap_servers = bootstrap_servers
        self._consumer: AIOKafkaConsumer | None = None

    @property
    def consumer(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "LogFollower.start() was not called"
        return self._consumer

    async def start(self) -> None:
        """Assign both topics and seek to the stored positions (a first start begins at the end)."""
        self._consumer = kafka_clients.consumer(bootstrap_servers=self.bootstrap_servers, group_id=None,
                                          enable_auto_commit=False, fetch_max_wait_ms=100,
                                          client_id="leadflow-clock")
        try:
            await self.consumer.start()
            found = await topic_partitions(self.consumer, self.topics)
        except KafkaError as exc:
            raise InfrastructureError(f"cannot reach the broker at {self.bootstrap_servers}: "
                                      f"{exc}") from exc
        tps = [TopicPartition(t, p) for t in self.topics for p in found[t]]
        missing = [t for t in self.topics if not any(tp.topic == t for tp in tps)]
        if missing:
            raise InfrastructureError(f"topics {missing} do not exist; run `leadflow topics create`")
        self.consumer.assign(tps)
        stored = await store.load_offsets(self.pool, self.topics)
        fresh = [tp for tp in tps if (tp.topic, tp.partition) not in stored]
        ends = await self.consumer.end_offsets(fresh) if fresh else {}
        await store.save_offsets(self.pool, {(tp.topic, tp.partition): ends[tp] for tp in fresh})
        for tp in tps:
            self.consumer.seek(tp, stored.get((tp.topic, tp.partition), ends.get(tp, 0)))

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def catch_up_ticks(self, timeout: float = 30.0) -> None:
        """Read clock.ticks up to its current end, so every tick already on the log is recorded."""
        tps = [tp for tp in self.consumer.assignment() if tp.topic == self.ticks_topic]
        ends = await self.consumer.end_offsets(tps)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout
        while [tp for tp in tps if await self.consumer.position(tp) < ends[tp]]:
            if loop.time() > give_up:
                raise InfrastructureError(f"could not read {self.ticks_topic} to its end within "
                                          f"{timeout:.0f}s; is the broker healthy?")
            await self.poll_once()

    async def poll_once(self, timeout_ms: int | None = None) -> int:
        """Apply one batch; returns the records consumed."""
        batches = await self.consumer.getmany(timeout_ms=timeout_ms or self.POLL_MS)
        records = [r for batch in batches.values() for r in batch]
        if records:
            await self.apply(records)
        return len(records)

    async def run(self) -> None:
        """Follow the log until cancelled; a failed batch is read again after a pause."""
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep following; the batch is re-read from the stored offsets
                log.exception("clock follower failed; retrying", extra={"action": "follower_error"})
                await asyncio.sleep(1)
                await self._rewind()

    async def _rewind(self) -> None:
        stored = await store.load_offsets(self.pool, self.topics)
        for tp in self.consumer.assignment():
            if (tp.topic, tp.partition) in stored:
                self.consumer.seek(tp, stored[(tp.topic, tp.partition)])

    async def apply(self, records: Sequence[ConsumerRecord]) -> None:
        """One transaction: ticks recorded first (a failure may need its tick), then job events."""
        offsets: dict[tuple[str, int], int] = {}
        ticks: list[TickEmitted] = []
        ends: list[JobCompleted | JobFailed] = []
        for record in records:
            offsets[(record.topic, record.partition)] = record.offset + 1
            try:
                event = decode(record.value)
            except EventDecodeError:
                continue  # the projector dead-letters it; nothing here depends on it
            if isinstance(event, TickEmitted):
                ticks.append(event)
            elif isinstance(event, JobCompleted | JobFailed):
                ends.append(event)
        changed = False
        async with self.pool.acquire() as conn, conn.transaction():
            await store.record_ticks(conn, ticks)
            for event in ends:
                changed |= await self._run_ended(conn, event)
            await store.save_offsets(conn, offsets)
        if changed:
            self.on_change()

    async def _run_ended(self, conn: asyncpg.Connection, event: JobCompleted | JobFailed) -> bool:
        job = event.job.value
        failed = isinstance(event, JobFailed)
        status = RunStatus.FAILED.value if failed else RunStatus.COMPLETED.value
        if not await store.record_outcome(conn, event.run_id, job, status):
            return False  # another part of a run already known to have ended so
        if not failed:
            if await store.pause_reason(conn, job) == FAILURES_REASON:
                await store.resume(conn, job)
                log.info("%s resumed: run %s succeeded", job, event.run_id,
                         extra={"action": "job_resumed"})
            return True
        assert isinstance(event, JobFailed)
        return await self._run_failed(conn, event)

    async def _run_failed(self, conn: asyncpg.Connection, event: JobFailed) -> bool:
        job = event.job.value
        config = self.config.job(JobName(job))
        streak = await store.failure_streak(conn, job)
        paused = await store.pause_reason(conn, job) is not None
        if should_pause(config, streak, paused):
            await store.pause(conn, job, FAILURES_REASON)
            cancelled = await store.cancel_retries(conn, job, "job paused")
            log.warning("%s paused after %d consecutive failed runs (%d pending retries "
                        "cancelled); `leadflow clock resume %s` or a successful manual run "
                        "resumes it", job, streak, cancelled, job, extra={"action": "job_paused"})
            return True
        if paused:
            return True
        tick = await store.tick_by_id(conn, event.run_id)
        retry = retry_for(event, config, tick["campaign_id"] if tick else None)
        if retry is not None and await store.add_retry(conn, retry):
            log.info("run %s of %s failed (%s); retry %d due at %s", event.run_id, job,
                     event.reason, retry.attempt, retry.due_at.isoformat(),
                     extra={"action": "retry_scheduled"})
        return True
