"""Running a replay: read a stage's input range, decide each lead from its current snapshot
through the stage's own logic, publish what changed, and record progress per batch.

Outputs carry the replay id and flow downstream as usual (the next stages propagate it). Each
batch's positions, counts and decided leads are recorded after its outputs are acknowledged,
so an interrupted replay resumes where it stopped; a batch redone after a crash produces the
same event ids (cause, transition, replay id), which every consumer drops as duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from events import (
    ALL_TENANTS,
    LEAD_TOPICS,
    STAGE_INPUTS,
    Envelope,
    EventDecodeError,
    JobName,
    Lead,
    LeadEvent,
    TickEmitted,
    TickSource,
    decode,
    stage_group,
    utcnow,
)

from ..pipeline.settings import Settings
from ..runtime import kafka_clients
from ..runtime.bus import Publisher, describe_topics, make_broker
from ..runtime.config import SHARED_TENANT
from ..runtime.db import READ_SCHEMA, create_pool
from ..runtime.dead_letters import dead_letter
from ..runtime.drain import Inbound, Outcome, StageLogic
from ..runtime.errors import InfrastructureError
from ..runtime.runs import RunContext
from . import current, rules, store
from .errors import ReplayError
from .offsets import high_watermarks, offsets_for_time
from .reader import RangeReader
from .spec import ReplaySpec, new_replay_id, replay_run_id
from .store import Counts, Range, Replay

log = logging.getLogger(__name__)

#: (offsets done, offsets in the range, counts so far), after every batch.
Progress = Callable[[int, int, Counts], None]
#: (replay id, resumed), once the replay to run is known.
Announce = Callable[[str, bool], None]


@dataclass(frozen=True, slots=True)
class Sample:
    """One decision a dry run would change."""

    lead_id: UUID
    email: str
    status: str
    before: str
    after: str
    then: str | None = None


@dataclass(slots=True)
class ReplayReport:
    stage: JobName
    replay_id: str | None
    dry_run: bool
    resumed: bool
    status: str
    counts: Counts
    offsets: int
    samples: list[Sample] = field(default_factory=list)
    projector_lag: int = 0


@dataclass(slots=True)
class _Decided:
    counts: Counts
    lead_ids: list[UUID]
    todo: list[tuple[Inbound, Lead]]  # input carrying the re-entry snapshot, current snapshot


def stage_logic(stage: JobName, settings: Settings, pool: asyncpg.Pool) -> StageLogic:
    """The live stage's own logic under today's config."""
    logic: StageLogic = rules.logic_class(stage).from_config(settings.pipeline, pool)
    return logic


class Replayer:
    """One replay (or dry run) of a stage's input range."""

    #: How long a replay waits for the projector to fold the log up to its start.
    PROJECTOR_WAIT_SECONDS = 60.0

    def __init__(self, settings: Settings, spec: ReplaySpec, *,
                 progress: Progress | None = None, announce: Announce | None = None) -> None:
        self.settings = settings
        self.spec = spec
        self.stage = spec.stage
        self.rules = rules.rules_for(spec.stage)
        self.accepts = accepted_types(spec.stage)
        self.prefix = settings.prefix
        self.topic_config = settings.pipeline.topics
        # A tenant is replayed from its own topics, or from the shared ones if it has none
        # (keeping its leads only); a replay of every tenant reads every tenant's.
        only = None if spec.tenant is None else (
            {spec.tenant} if self.topic_config.isolated(spec.tenant) else {SHARED_TENANT})
        self.topics = self.topic_config.names(STAGE_INPUTS[spec.stage][0], only)
        self.progress = progress
        self.announce = announce
        self._groups: dict[JobName, AIOKafkaConsumer] = {}
        self._counts: dict[str, int] = {}
        self._pool: asyncpg.Pool | None = None
        self._read: asyncpg.Pool | None = None
        self._consumer: AIOKafkaConsumer | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None
        return self._pool

    @property
    def read(self) -> asyncpg.Pool:
        assert self._read is not None
        return self._read

    @property
    def consumer(self) -> AIOKafkaConsumer:
        assert self._consumer is not None
        return self._consumer

    async def run(self) -> ReplayReport:
        """Dry run or replay, as the spec says; resources are released whatever happens."""
        self._pool = await create_pool(self.settings.database_url, max_size=4)
        try:
            self._read = await create_pool(self.settings.database_url, max_size=2,
                                           search_path=READ_SCHEMA)
            self._consumer = await self._start_consumer(None, "leadflow-replay")
            if self.spec.dry_run:
                return await self._dry_run()
            lock = await store.hold_stage(self.settings.database_url, self.settings.prefix,
                                           self.stage.value)
            try:
                return await self._replay()
            finally:
                await lock.close()
        finally:
            await self._close()

    async def _close(self) -> None:
        consumers = [c for c in [self._consumer, *self._groups.values()] if c is not None]
        await asyncio.gather(*(c.stop() for c in consumers), return_exceptions=True)
        for pool in (self._read, self._pool):
            if pool is not None:
                await pool.close()

    async def _start_consumer(self, group: str | None, client_id: str) -> AIOKafkaConsumer:
        consumer = kafka_clients.consumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers, group_id=group,
            client_id=client_id, enable_auto_commit=False, auto_offset_reset="earliest",
            max_poll_records=self.spec.batch_size, fetch_max_wait_ms=100)
        try:
            await consumer.start()
        except KafkaError as exc:
            raise InfrastructureError(f"cannot reach the broker at "
                                      f"{self.settings.kafka_bootstrap_servers}: {exc}") from exc
        return consumer

    # --- planning -------------------------------------------------------------------------

    def _lead_topics(self) -> list[str]:
        return [name for t in LEAD_TOPICS for name in self.topic_config.names(t)]

    async def _partitions(self, topic: str) -> list[TopicPartition]:
        if not self._counts:  # one metadata read for every lead topic (a consumer's own
            names = self._lead_topics()  # only tracks its assignment)
            self._counts = await describe_topics(self.settings.kafka_bootstrap_servers, names)
        found = self._counts.get(topic, 0)
        if not found:
            raise ReplayError(f"topic {topic} does not exist; run `leadflow topics create` "
                              "(and check the topic prefix)")
        return [TopicPartition(topic, p) for p in range(found)]

    async def _plan(self) -> list[Range]:
        """Offsets of the range: first message at or after --from, up to --to (exclusive) or the
        end of the log now."""
        if self.spec.from_at is None:
            raise ReplayError(f"there is no replay {self.spec.replay_id}; give --from to start one")
        tps = [tp for topic in self.topics for tp in await self._partitions(topic)]
        highs = await high_watermarks(self.consumer, tps)
        starts = await offsets_for_time(self.consumer, tps, self.spec.from_at, highs)
        ends = (await offsets_for_time(self.consumer, tps, self.spec.to_at, highs)
                if self.spec.to_at else highs)
        return [Range(tp.topic, tp.partition, starts[tp], max(starts[tp], ends[tp]), starts[tp])
                for tp in tps]

    async def _lead_log_end(self) -> dict[TopicPartition, int]:
        tps = [tp for topic in self._lead_topics() for tp in await self._partitions(topic)]
        return await high_watermarks(self.consumer, tps)

    async def _await_projector(self) -> None:
        """A replay moves leads from their current snapshots: the read models must have folded
        the lead topics up to where they ended when the replay started (not a moving end)."""
        ends = await self._lead_log_end()
        give_up = time.monotonic() + self.PROJECTOR_WAIT_SECONDS
        while (lag := await current.projector_lag(self.read, ends)) > 0:
            if time.monotonic() > give_up:
                raise ReplayError(
                    f"the read models are {lag:,} lead events behind the log; start the "
                    "projector (leadflow run projector), let it catch up and run the replay again")
            await asyncio.sleep(0.5)

    async def _open(self) -> tuple[Replay, list[Range], bool]:
        """The replay to run and its ranges: resumed if the same one is unfinished."""
        spec = self.spec
        existing = (await store.get(self.pool, spec.replay_id) if spec.replay_id else
                    await store.find_open(self.pool, self.stage.value, spec.from_at,  # type: ignore[arg-type]
                                          spec.to_at, spec.tenant))
        if existing is not None:
            if existing.stage != self.stage.value:
                raise ReplayError(f"replay {existing.replay_id} is a replay of {existing.stage}, "
                                  f"not {self.stage.value}")
            if existing.status == "completed":
                raise ReplayError(f"replay {existing.replay_id} completed already; omit "
                                  "--replay-id to start a new replay of the same range")
            await store.resume(self.pool, existing.replay_id)
            return existing, await store.ranges(self.pool, existing.replay_id), True
        decided_at = utcnow()
        ranges = await self._plan()
        assert spec.from_at is not None
        replay = Replay(replay_id=spec.replay_id or new_replay_id(self.stage, decided_at),
                        stage=self.stage.value, from_at=spec.from_at, to_at=spec.to_at,
                        tenant_id=spec.tenant, status="running", decided_at=decided_at,
                        requested_by=spec.requested_by)
        await store.create(self.pool, replay, ranges)
        return replay, ranges, False

    # --- deciding -------------------------------------------------------------------------

    async def _committed(self, currents: Sequence[current.Current]) -> dict[tuple[str, int], int | None]:
        """The live groups' positions on the partitions holding these leads' last events."""
        wanted: dict[JobName, set[TopicPartition]] = {}
        for cur in currents:
            stage = rules.NEXT_STAGE[cur.lead.status]
            if (stage is not None and cur.position is not None
                    and cur.lead.status in self.rules.redecide):  # kept leads never wait
                wanted.setdefault(stage, set()).add(TopicPartition(cur.position[0], cur.position[1]))
        found: dict[tuple[str, int], int | None] = {}
        for stage, tps in wanted.items():
            group = await self._group(stage)
            for tp in tps:
                found[(tp.topic, tp.partition)] = await group.committed(tp)
        return found

    async def _group(self, stage: JobName) -> AIOKafkaConsumer:
        """A consumer that only reads the live group's committed offsets: it never joins the
        group, never fetches and never commits."""
        if stage not in self._groups:
            consumer = await self._start_consumer(stage_group(stage, self.prefix),
                                                  f"leadflow-replay-{stage.value}-offsets")
            self._groups[stage] = consumer
            tps = [tp for topic in self.topic_config.names(STAGE_INPUTS[stage][0])
                   for tp in await self._partitions(topic)]
            consumer.assign(tps)
            consumer.pause(*tps)
        return self._groups[stage]

    async def _decide(self, records: Sequence[ConsumerRecord], replay_id: str | None,
                      tenant: str | None) -> _Decided:
        counts = Counts(events_read=len(records))
        inputs: dict[UUID, tuple[ConsumerRecord, LeadEvent]] = {}
        for record in records:
            try:
                event = decode(record.value)
            except EventDecodeError:
                counts.skipped += 1  # the live stage dead-lettered it already
                continue
            if (not isinstance(event, self.accepts) or not isinstance(event, LeadEvent)
                    or (tenant is not None and event.tenant_id != tenant)
                    or event.lead.lead_id in inputs):
                counts.skipped += 1
                continue
            inputs[event.lead.lead_id] = (record, event)
        already = await store.decided(self.pool, replay_id, list(inputs)) if replay_id else set()
        currents = await current.load(self.read, {k: e.lead.source for k, (_, e) in inputs.items()})
        committed = await self._committed(list(currents.values()))
        decided = _Decided(counts, [], [])
        for lead_id, (record, event) in inputs.items():
            cur = currents.get(lead_id)
            waiting = False
            if cur is not None and cur.position is not None and (
                    (cur.position[0], cur.position[1]) in committed):
                topic, partition, offset = cur.position
                waiting = rules.in_flight(offset, committed[(topic, partition)])
            done = lead_id in already or (cur is not None and replay_id is not None
                                          and cur.replay_id == replay_id)
            verdict = rules.verdict(self.rules, cur.lead if cur else None, waiting=waiting,
                                    decided=done)
            if verdict is rules.Verdict.DONE:
                counts.skipped += 1
                continue
            decided.lead_ids.append(lead_id)
            if verdict is rules.Verdict.KEPT:
                counts.kept += 1
            elif verdict is rules.Verdict.IN_FLIGHT:
                counts.in_flight += 1
            elif verdict is rules.Verdict.MISSING:
                counts.missing += 1
            else:
                assert cur is not None
                start = rules.reentry(self.stage, cur.lead)
                decided.todo.append((Inbound(record, event.model_copy(update={"lead": start})),
                                     cur.lead))
        return decided

    # --- running --------------------------------------------------------------------------

    async def _replay(self) -> ReplayReport:
        replay, ranges, resumed = await self._open()
        log.info("replay %s of %s %s", replay.replay_id, self.stage.value,
                 "resumed" if resumed else "started", extra={"action": "replay_started"})
        if self.announce is not None:
            self.announce(replay.replay_id, resumed)
        reader = RangeReader(self.consumer, ranges)
        totals = Counts()
        totals.add(replay.counts)
        try:
            await self._await_projector()
            logic = stage_logic(self.stage, self.settings, self.pool)
            ctx = self._context(replay)
            broker = make_broker(self.settings.kafka_bootstrap_servers, client_id="leadflow-replay")
            await broker.start()
            try:
                publisher = Publisher(broker, self.settings.pipeline.topics)
                reader.start()
                self._report(reader, totals)
                while not reader.done:
                    records, nexts = await reader.read(self.spec.batch_size)
                    decided = await self._decide(records, replay.replay_id, replay.tenant_id)
                    await self._apply(decided, logic, ctx, publisher)
                    await store.record(self.pool, replay.replay_id, reader.positions(nexts),
                                       decided.counts, decided.lead_ids)
                    reader.advance(nexts)
                    totals.add(decided.counts)
                    self._report(reader, totals)
            finally:
                await broker.stop()
            await store.finish(self.pool, replay.replay_id, "completed")
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await asyncio.shield(store.finish(self.pool, replay.replay_id, "failed",
                                                  f"{type(exc).__name__}: {exc}"))
            log.warning("replay %s stopped: %s", replay.replay_id, exc,
                        extra={"action": "replay_stopped"})
            if isinstance(exc, Exception):
                raise ReplayError(f"replay {replay.replay_id} stopped ({exc}); what it did is "
                                  f"kept: resume it with `leadflow replay {self.stage.value} "
                                  f"--replay-id {replay.replay_id}`") from exc
            raise
        log.info("replay %s completed: %s", replay.replay_id, totals.as_dict(),
                 extra={"action": "replay_completed"})
        return ReplayReport(self.stage, replay.replay_id, False, resumed, "completed", totals,
                            reader.total())

    def _context(self, replay: Replay) -> RunContext:
        run_id = replay_run_id(replay.replay_id)
        tick = TickEmitted(event_id=run_id, occurred_at=replay.decided_at,
                           recorded_at=replay.decided_at,
                           tenant_id=replay.tenant_id or ALL_TENANTS, job=self.stage,
                           scheduled_for=replay.decided_at, source=TickSource.BACKFILL,
                           requested_by=replay.requested_by)
        return RunContext(run_id=run_id, tick=tick, job=self.stage, instance_id="replay",
                          replay_id=replay.replay_id)

    async def _apply(self, decided: _Decided, logic: StageLogic, ctx: RunContext,
                     publisher: Publisher) -> None:
        """Decide through the stage's logic; publish what changed and dead-letter what failed."""
        if not decided.todo:
            return
        before = {id(inbound): lead for inbound, lead in decided.todo}
        outcomes = await logic.process([inbound for inbound, _ in decided.todo], ctx)
        outputs: list[Envelope] = []
        good: list[Outcome] = []
        for outcome in outcomes:
            if outcome.error is not None:
                outputs.append(dead_letter(outcome.inbound.record, self.stage, outcome.error, 1,
                                           outcome.inbound.event))
                decided.counts.failed += 1
                continue
            after = [e for e in outcome.events if isinstance(e, LeadEvent)]
            if after and rules.changed(self.stage, before[id(outcome.inbound)], after[-1].lead):
                outputs += outcome.events
                good.append(outcome)
                decided.counts.replayed += 1
            else:
                decided.counts.unchanged += 1
        sent = await publisher.publish(outputs)
        if good:
            await logic.published(sent, ctx)

    def _report(self, reader: RangeReader, counts: Counts) -> None:
        if self.progress is not None:
            self.progress(reader.progress(), reader.total(), counts)

    # --- dry run --------------------------------------------------------------------------

    async def _dry_run(self) -> ReplayReport:
        """Count and sample what a replay would change; nothing is published or recorded."""
        ranges = await self._plan()
        lag = await current.projector_lag(self.read, await self._lead_log_end())
        reader = RangeReader(self.consumer, ranges)
        reader.start()
        totals = Counts()
        samples: list[Sample] = []
        config = self.settings.pipeline
        self._report(reader, totals)
        while not reader.done:
            records, nexts = await reader.read(self.spec.batch_size)
            decided = await self._decide(records, None, self.spec.tenant)
            for inbound, before in decided.todo:
                try:
                    after = rules.preview(self.stage, inbound.event.lead, config)  # type: ignore[attr-defined]
                except Exception:  # noqa: BLE001 - the replay would dead-letter it
                    decided.counts.failed += 1
                    continue
                if not rules.changed(self.stage, before, after):
                    decided.counts.unchanged += 1
                    continue
                decided.counts.replayed += 1
                if len(samples) < self.spec.sample_size:
                    samples.append(Sample(before.lead_id, before.email, before.status.value,
                                          rules.describe(self.stage, before),
                                          rules.describe(self.stage, after),
                                          rules.outlook(self.stage, after, config)))
            reader.advance(nexts)
            totals.add(decided.counts)
            self._report(reader, totals)
        return ReplayReport(self.stage, None, True, False, "dry run", totals, reader.total(),
                            samples, lag)


def accepted_types(stage: JobName) -> tuple[type[LeadEvent], ...]:
    """Event types the stage takes from its input topic."""
    accepts: tuple[type[LeadEvent], ...] = rules.logic_class(stage).accepts
    return accepts
