"""The projector: folds every topic into the read models, exactly once.

Partitions are assigned by hand (no consumer group): the consumed offsets live in Postgres
beside the read models and commit in the same transaction as each batch's writes; on start
the projector seeks to them. One projector per schema holds a Postgres advisory lock; a
second one waits as a standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError

from events import (
    Envelope,
    JobCompleted,
    JobName,
    JobPartFields,
    JobStarted,
    RunCounts,
    TickEmitted,
    Topic,
    utcnow,
)
from events.ids import job_event_id

from ..runtime import kafka_clients
from ..runtime.bus import Publisher, make_broker
from ..runtime.db import (
    CONNECTION_ERRORS,
    DATA_ERRORS,
    READ_SCHEMA,
    Backoff,
    open_connection,
    quote_ident,
)
from ..runtime.dead_letters import dead_letter
from ..runtime.errors import InfrastructureError
from ..runtime.locks import advisory_key, try_lock, unlock_all
from ..runtime.logging import redact
from ..runtime.partitions import topic_partitions
from ..runtime.runs import run_info
from ..runtime.settings import Settings
from . import store
from .fold import Changes, Positioned, admit, fold

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Fetched:
    """A decoded batch and the seek generation it was fetched in; ``undecodable``: messages not
    folded (undecodable or implausible) with the reason."""

    generation: int
    records: list[ConsumerRecord]
    positioned: list[Positioned]
    undecodable: list[tuple[ConsumerRecord, Exception]]


@dataclass(frozen=True, slots=True)
class Share:
    """One of ``count`` rebuild workers: it folds its share of the lead-keyed partitions.

    Every lead topic is keyed by lead id, and a tenant's lead topics (or the shared ones) have
    the same partition count, so partition p of each holds the same leads: workers split leads
    without sharing any row. Ticks, job and
    control events (order matters across them) all go to worker 0.
    """

    index: int
    count: int
    lead_keyed: frozenset[str]

    def owns(self, topic: str, partition: int) -> bool:
        if topic in self.lead_keyed:
            return partition % self.count == self.index
        return self.index == 0


def lock_key(prefix: str, schema: str, *parts: str) -> int:
    """Advisory lock id of the projector writing ``schema`` (``parts``: one worker's rows)."""
    return advisory_key("projector", prefix, schema, *parts)


def locks_for(prefix: str, schema: str, share: Share | None,
              numbers: Iterable[int]) -> list[tuple[int, bool]]:
    """The advisory locks (key, shared) a projector holds while it writes ``schema``.

    Alone: the schema's. A worker: the schema's shared with the other workers, one per lead
    partition number it folds (``numbers``) and, for worker 0, one for the rest of the log.
    So a projector alone and any worker exclude each other, and so do workers of two splits
    (2 and 3 workers, say) that would fold the same partitions.
    """
    if share is None:
        return [(lock_key(prefix, schema), False)]
    return [(lock_key(prefix, schema), True),
            *((lock_key(prefix, schema, f"partition {n}"), False) for n in sorted(set(numbers))),
            *([(lock_key(prefix, schema, "unkeyed"), False)] if share.index == 0 else [])]


class Projector:
    """Consumes all topics from its stored offsets and applies batches transactionally."""

    def __init__(self, settings: Settings, *, schema: str = READ_SCHEMA, batch_size: int = 3000,
                 topics: Sequence[Topic] = tuple(Topic), publish_dead_letters: bool = True,
                 share: Share | None = None, adopt_log: bool = False) -> None:
        self.settings = settings
        #: A partition whose log ends before the stored offset is folded again from its start
        #: (after a broker was replaced and a person chose to keep the read models).
        self.adopt_log = adopt_log
        self.schema = schema
        self.share = share
        self.batch_size = batch_size
        names = settings.pipeline.topics
        # Every tenant's lead topics: the read models cover all tenants, whatever a stage serves.
        self.topic_names = [name for t in topics for name in names.names(t)]
        self._logical = {name: names.logical(name) for name in self.topic_names}
        self.publish_dead_letters = publish_dead_letters
        self.events_applied = 0
        self.lag: int | None = None
        self._conn: asyncpg.Connection | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._broker = make_broker(settings.kafka_bootstrap_servers, client_id="leadflow-projector")
        self._publisher = Publisher(self._broker, settings.pipeline.topics)
        self._stop = asyncio.Event()
        self._status_at = 0.0
        self._generation = 0
        self._locks: list[tuple[int, bool]] = []
        #: Partitions whose log ends before the offset the read models were folded to.
        self.behind: dict[tuple[str, int], int] = {}
        #: With ``adopt_log``: the partitions folded again from their start, and where they were.
        self.adopted: dict[tuple[str, int], int] = {}

    @property
    def conn(self) -> asyncpg.Connection:
        assert self._conn is not None, "Projector.start() was not called"
        return self._conn

    @property
    def consumer(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "Projector.start() was not called"
        return self._consumer

    @property
    def worker(self) -> int:
        """This projector's worker index (0 when it folds the whole log)."""
        return self.share.index if self.share is not None else 0

    async def start(self, *, wait_for_lock: bool = True) -> None:
        """Take the schema's locks (waiting as standby), then seek to the stored offsets."""
        self._consumer = kafka_clients.consumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers, group_id=None,
            # "none": an offset the log does not hold is reported (_out_of_range), never
            # silently reset to the start.
            enable_auto_commit=False, auto_offset_reset="none", client_id="leadflow-projector",
            # No fetch_min_bytes here, unlike the stages (runtime/drain.py): catch-up and
            # rebuild end after a few empty polls, and a fetch held back for more bytes made
            # them end before the log's last records.
            max_poll_records=self.batch_size, fetch_max_wait_ms=200,
            # The consumer buffers up to max_partition_fetch_bytes for each of the ~100
            # partitions it reads: at 1 MB those buffers held 69 MiB of a 194 MiB peak RSS
            # (tracemalloc, in the pipeline). At 256 KB the peak is 146 MiB, at the same rate
            # (leadflow bench pipeline, docs/performance.md); batches of 3,000 decoded events,
            # two in flight, hold ~40 MiB more.
            max_partition_fetch_bytes=256 * 1024, fetch_max_bytes=16 * 1024 * 1024)
        try:
            await self.consumer.start()
        except KafkaError as exc:
            raise InfrastructureError(f"cannot reach the broker: {exc}") from exc
        tps = await self._partitions()
        self._locks = locks_for(self.settings.prefix, self.schema, self.share,
                                (tp.partition for tp in tps
                                 if self.share is not None and tp.topic in self.share.lead_keyed))
        await self._connect_db(wait_for_lock=wait_for_lock)
        if self.worker == 0:
            await store.forget_workers(self.conn, self.share.count if self.share else 1)
        if self.publish_dead_letters:
            await self._broker.start()
        self.consumer.assign(tps)
        await self._seek_to_stored()

    async def _connect_db(self, *, wait_for_lock: bool = True) -> None:
        # No statement cache: after a rebuild swap the same names mean other tables.
        self._conn = await open_connection(self.settings.database_url, statement_cache_size=0)
        await self.conn.execute(f"SET search_path TO {quote_ident(self.schema)}, public")
        while not await self._take_locks():
            if not wait_for_lock:
                raise InfrastructureError(f"another projector is writing schema {self.schema}")
            log.info("another projector is active; standing by", extra={"action": "standby"})
            await asyncio.sleep(2)

    async def _take_locks(self) -> bool:
        """All of this projector's locks, or none (so two standbys never hold half each)."""
        for key, shared in self._locks:
            if not await try_lock(self.conn, key, shared=shared):
                await unlock_all(self.conn)
                return False
        return True

    async def _reconnect(self, cause: BaseException) -> None:
        """Wait for Postgres with capped, jittered backoff; then retake the lock and resume
        exactly at the stored offsets (a batch in flight was never committed)."""
        log.warning("projector paused: Postgres connection lost (%s); reconnecting",
                    type(cause).__name__, extra={"action": "db_connection_lost"})
        self._generation += 1  # a batch fetched before the loss is not ours to write any more
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                await self._connect_db()
                await self._seek_to_stored()
            except CONNECTION_ERRORS as exc:
                if self._conn is not None:
                    self._conn.terminate()
                    self._conn = None
                delay = backoff.next_delay()
                log.info("Postgres still unreachable (%s); next try in %.1fs",
                         type(exc).__name__, delay, extra={"action": "db_retry"})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                continue
            log.warning("projector resumed: Postgres is back", extra={"action": "db_reconnected"})
            return

    async def _seek_to_stored(self) -> None:
        stored = await store.stored_offsets(self.conn)
        for tp in self.consumer.assignment():
            position = stored.get((tp.topic, tp.partition))
            if position is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, position)

    async def _partitions(self) -> list[TopicPartition]:
        """The partitions this projector folds (its share of them, for a worker)."""
        found = await topic_partitions(self.consumer, self.topic_names)
        tps = [TopicPartition(name, p) for name in self.topic_names for p in found[name]
               if self.share is None or self.share.owns(name, p)]
        if not tps:
            raise InfrastructureError(f"none of the topics {self.topic_names} exist; run "
                                      "`leadflow topics create` first")
        return tps

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self.publish_dead_letters:
            await self._broker.stop()
        if self._conn is not None:
            try:
                await self._conn.close()  # closing the session releases the advisory lock
            except CONNECTION_ERRORS:
                self._conn.terminate()  # already gone: so is the session and its lock
            self._conn = None

    async def fetch(self, timeout_ms: int = 500) -> Fetched:
        """The next batch, decoded (undecodable messages keep their place with event None)."""
        generation = self._generation
        records: dict[TopicPartition, list[ConsumerRecord]] = {}
        for _ in range(len(self.consumer.assignment()) + 1):  # one error per partition at most
            try:
                records = await self.consumer.getmany(timeout_ms=timeout_ms,
                                                      max_records=self.batch_size)
                break
            except OffsetOutOfRangeError as exc:
                await self._out_of_range(exc.args[0] if exc.args else {})
        batch = [r for part in records.values() for r in part]
        positioned: list[Positioned] = []
        undecodable: list[tuple[ConsumerRecord, Exception]] = []
        for i, record in enumerate(batch):
            if i % 500 == 499:
                # Yield now and then: the batch being written resumes as soon as Postgres
                # answers, so decoding fills the database's turn instead of delaying it.
                await asyncio.sleep(0)
            event, problem = admit(record.value, self._logical.get(record.topic))
            if problem is not None:
                undecodable.append((record, problem))
            positioned.append(Positioned(record.topic, record.partition, record.offset, event,
                                         record.value))
        return Fetched(generation, batch, positioned, undecodable)

    async def step(self, timeout_ms: int = 500) -> int:
        """Fetch and fold one batch; return how many messages it consumed."""
        return await self.apply(await self.fetch(timeout_ms))

    async def apply(self, fetched: Fetched) -> int:
        """Fold a fetched batch in one transaction with its offsets; returns messages applied."""
        if fetched.generation != self._generation:
            return 0  # fetched before a re-seek: those positions are no longer ours
        if fetched.records:
            if fetched.undecodable:
                await self._report_undecodable(fetched.undecodable)
            try:
                if not await self._write(fetched.records, fetched.positioned):
                    return 0
            except DATA_ERRORS as exc:
                log.warning("a batch of %d was refused by Postgres (%s); applying it message by "
                            "message to park the culprit", len(fetched.records),
                            type(exc).__name__, extra={"action": "batch_refused"})
                if not await self._write_one_by_one(fetched):
                    return 0
            self.events_applied += len(fetched.records)
        lag = await self._lag()
        if fetched.records or lag != self.lag or time.monotonic() - self._status_at > 5:
            await store.record_status(self.conn, lag, len(fetched.records), self.worker)
            self._status_at = time.monotonic()
        self.lag = lag
        return len(fetched.records)

    async def _write(self, records: Sequence[ConsumerRecord],
                     positioned: Sequence[Positioned]) -> bool:
        """Fold and write messages with their offsets in one transaction; False if fenced."""
        async with self.conn.transaction():
            if await self._fenced(records):
                return False  # the transaction holds no writes; positions were reset
            decoded = [p for p in positioned if p.event is not None]
            loaded = await store.load(self.conn, decoded)
            changes = fold(positioned, loaded, retention=self.settings.pipeline.retention.max_age)
            pruned = await store.write(self.conn, changes)
        if changes.prunes and self.publish_dead_letters:
            await self._report_retention(changes.prunes, pruned)
        return True

    async def _write_one_by_one(self, fetched: Fetched) -> bool:
        """Each message in its own transaction; one Postgres refuses is parked (dead-lettered,
        its offset passed) so the partition moves on. False if fenced."""
        parked: list[tuple[ConsumerRecord, Exception]] = []
        events: dict[int, Envelope] = {}
        for record, item in zip(fetched.records, fetched.positioned, strict=True):
            try:
                if not await self._write([record], [item]):
                    return False
            except DATA_ERRORS as exc:
                parked.append((record, exc))
                if item.event is not None:
                    events[id(record)] = item.event
                skipped = Positioned(item.topic, item.partition, item.offset, None)
                if not await self._write([record], [skipped]):
                    return False
        if parked:
            await self._report_undecodable(parked, events)
        return True

    async def _out_of_range(self, positions: dict[TopicPartition, int]) -> None:
        """A stored offset the broker's log does not hold: below its start, the events were
        deleted (retention) before being read, so folding goes on from the start, and says so;
        past its end, the log holds less than the read models (the broker lost data or was
        replaced), so that partition waits for a person to decide, and says what to do."""
        starts = await self.consumer.beginning_offsets(list(positions))
        for tp, offset in positions.items():
            if self.adopt_log and offset > starts[tp]:
                log.warning("%s[%d]: the read models were folded to offset %d, the log now "
                            "holds less; folding this log from offset %d on top of them",
                            tp.topic, tp.partition, offset, starts[tp],
                            extra={"action": "log_adopted"})
                self.adopted[(tp.topic, tp.partition)] = offset
                async with self.conn.transaction():
                    await store.write(self.conn, Changes(offsets={(tp.topic, tp.partition):
                                                                  starts[tp]}))
                self.consumer.seek(tp, starts[tp])
            elif offset < starts[tp]:
                log.error("%s[%d]: events %d to %d were deleted by the broker before the "
                          "projector read them; folding goes on from %d", tp.topic, tp.partition,
                          offset, starts[tp] - 1, starts[tp], extra={"action": "log_truncated"})
                async with self.conn.transaction():
                    await store.write(self.conn, Changes(offsets={(tp.topic, tp.partition):
                                                                  starts[tp]}))
                self.consumer.seek(tp, starts[tp])
            else:
                self.consumer.pause(tp)
                self.behind[(tp.topic, tp.partition)] = offset
                log.error("%s[%d]: the log ends before offset %d, which the read models were "
                          "folded to: the broker lost data or was replaced. This partition is not "
                          "folded until you restore the broker's data, or rebuild the read "
                          "models from the log as it is (leadflow projector rebuild); see "
                          "docs/operations.md", tp.topic, tp.partition, offset,
                          extra={"action": "log_behind_read_models"})

    async def _pipeline(self, keep_going: Callable[[int], bool], timeout_ms: int) -> int:
        """Fetch and decode the next batch while the current one is written to Postgres."""
        consumed = 0
        ahead = asyncio.create_task(self.fetch(timeout_ms))
        try:
            while True:
                fetched = await ahead
                ahead = asyncio.create_task(self.fetch(timeout_ms))
                n = await self.apply(fetched)
                consumed += n
                if not keep_going(n):
                    return consumed
        finally:
            ahead.cancel()
            await asyncio.gather(ahead, return_exceptions=True)

    async def _fenced(self, records: Sequence[ConsumerRecord]) -> bool:
        """True (and positions reset) if the schema's stored offsets do not continue this batch.

        That happens after a rebuild swapped in a schema folded to other offsets, or if another
        projector wrote the schema: the batch is dropped and reading resumes where it says.
        """
        first: dict[tuple[str, int], int] = {}
        for record in records:
            key = (record.topic, record.partition)
            first[key] = min(first.get(key, record.offset), record.offset)
        stored = await store.stored_offsets(self.conn)
        if all(stored.get(key, offset) == offset for key, offset in first.items()):
            return False
        log.warning("read models were written elsewhere (rebuild swap?); re-seeking to their "
                    "offsets", extra={"action": "projector_refenced"})
        self._generation += 1
        await self._seek_to_stored()
        return True

    async def _report_retention(self, prunes: list[tuple[TickEmitted, datetime]],
                                pruned: list[tuple[int, int]]) -> None:
        """The retention tick is a run like any other: report it as job events."""
        events: list[Envelope] = []
        for (tick, before), (runs, lead_events) in zip(prunes, pruned, strict=True):
            now = utcnow()
            common = JobPartFields(occurred_at=now, tenant_id=tick.tenant_id,
                                   correlation_id=tick.tick_id, causation_id=tick.tick_id,
                                   run_id=tick.tick_id, job=JobName.RETENTION, part="projector",
                                   run=run_info(tick))
            events.append(JobStarted(event_id=job_event_id(tick.tick_id, "projector", "started"),
                                     recorded_at=now, started_at=now, **common))
            events.append(JobCompleted(
                event_id=job_event_id(tick.tick_id, "projector", "completed"), recorded_at=now,
                started_at=now,
                completed_at=now, duration_seconds=0.0, **common,
                counts=RunCounts(leads_processed=runs + lead_events,
                                 leads_succeeded=runs + lead_events)))
            log.info("retention: pruned %d runs and %d lead events recorded before %s", runs,
                     lead_events, before.isoformat(), extra={"action": "retention_pruned"})
        await self._publisher.publish(events)

    async def _report_undecodable(self, items: list[tuple[ConsumerRecord, Exception]],
                                  events: dict[int, Envelope] | None = None) -> None:
        """Dead-letter messages not folded (``events``: the decoded event by id(record), for
        the letter's lead and tenant)."""
        dlq = Topic.LEADS_DLQ.physical(self.settings.prefix)
        known = events or {}
        letters = [dead_letter(r, None, e, attempts=1, event=known.get(id(r)))
                   for r, e in items if r.topic != dlq]
        for record, exc in items:
            log.warning("not folding %s[%d]@%d (dead-lettered): %s", record.topic,
                        record.partition, record.offset, redact(str(exc)),
                        extra={"action": "undecodable"})
        if letters and self.publish_dead_letters:
            await self._publisher.publish(letters)

    async def _lag(self) -> int | None:
        """Messages behind the log's end (None until every partition has been fetched once)."""
        total, known = 0, True
        shorter: dict[TopicPartition, int] = {}
        paused = self.consumer.paused()
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if tp in paused:
                continue
            if high is None:
                known = False
                continue
            position = await self.consumer.position(tp)
            if high < position:  # a broker that answers such a fetch with no error (Tansu)
                shorter[tp] = position
            total += max(0, high - position)
        if shorter:
            await self._out_of_range(shorter)
        return total if known else None

    async def catch_up(self, *, idle_polls: int = 2,
                       progress: Callable[[int, int | None], None] | None = None) -> int:
        """Fold until ``idle_polls`` polls in a row bring nothing; return messages consumed."""
        idle = 0

        def keep_going(n: int) -> bool:
            nonlocal idle
            idle = 0 if n else idle + 1
            if progress is not None:
                progress(n, self.lag)
            return idle < idle_polls

        return await self._pipeline(keep_going, timeout_ms=300)

    async def run_forever(self) -> None:
        """Run until SIGINT or SIGTERM."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        await self.run()

    def request_stop(self) -> None:
        """Ask ``run`` to finish its batch and return."""
        self._stop.set()

    async def run(self) -> None:
        """Fold until asked to stop, pausing (never exiting) while Postgres is unreachable."""
        await self.start()
        last_log = time.monotonic()

        def keep_going(_: int) -> bool:
            nonlocal last_log
            if time.monotonic() - last_log > 60:
                last_log = time.monotonic()
                log.info("projector: %d events applied, lag %s", self.events_applied, self.lag,
                         extra={"action": "projector_progress"})
            return not self._stop.is_set()

        try:
            while not self._stop.is_set():
                try:
                    await self._pipeline(keep_going, timeout_ms=500)
                except CONNECTION_ERRORS as exc:
                    await self._reconnect(exc)
        finally:
            await self.stop()

