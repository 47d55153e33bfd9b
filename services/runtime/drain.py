"""Tick-gated draining of a stage's input topic.

Between runs the consumer keeps polling with every partition paused, so it stays in its group
without consuming. A run resumes the partitions, takes at most the run's budget in batches
(decode once, decide, publish the batch, await the acks, commit; over a backlog the next
batch is decided while one is published), and pauses them again.
A lead whose processing keeps failing goes to leads.dlq; the run goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol
from uuid import UUID

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from events import (
    SCOPE_UNSUPPORTED,
    STAGE_INPUTS,
    TENANT_NOT_SERVED,
    DeadLettered,
    Envelope,
    EventDecodeError,
    IllegalTransition,
    JobName,
    LeadEvent,
    RunCounts,
    TickEmitted,
    Topic,
    decode,
    stage_group,
    tenant_counts,
)

from . import kafka_clients
from .budget import RunBudget, later_claim
from .bus import Publisher, Sent
from .config import StageConfig, TopicsConfig
from .dead_letters import dead_letter
from .errors import InfrastructureError
from .partitions import wait_for_topics
from .runs import RunContext, RunResult

log = logging.getLogger(__name__)

#: The tenant a manifest counts an input under when the input could not be read.
UNKNOWN_TENANT = "unknown"


@dataclass(frozen=True, slots=True)
class Inbound:
    """One input message, decoded."""

    record: ConsumerRecord
    event: Envelope
    #: The record's partition in the stage's numbering of all its input partitions (the
    #: shared topic's first, then each tenant's): what runs report and instances own.
    partition: int = 0


@dataclass(slots=True)
class Outcome:
    """What processing one input produced: events to publish, or the error that stopped it."""

    inbound: Inbound
    events: Sequence[Envelope] = ()
    error: BaseException | None = None

    @property
    def retriable(self) -> bool:
        # Deterministic failures would fail again; only the rest is worth another attempt.
        return self.error is not None and not isinstance(
            self.error, IllegalTransition | EventDecodeError | ValueError)


class StageLogic(Protocol):
    """A stage's decisions for a batch of inputs (I/O it needs included, e.g. a ledger)."""

    job: ClassVar[JobName]
    accepts: ClassVar[tuple[type[LeadEvent], ...]]

    async def process(self, items: Sequence[Inbound], ctx: RunContext) -> list[Outcome]:
        """One Outcome per item. Per-lead errors go in Outcome.error; raising fails the batch."""
        ...

    async def published(self, sent: Sent, ctx: RunContext) -> None:
        """Called once the batch's outputs (``sent``) are acknowledged by the broker."""
        ...


def decide_each(items: Sequence[Inbound],
                decide: Callable[[Inbound], Sequence[Envelope]]) -> list[Outcome]:
    """Apply a per-lead decision; an exception becomes that lead's Outcome.error."""
    outcomes: list[Outcome] = []
    for item in items:
        try:
            outcomes.append(Outcome(item, decide(item)))
        except Exception as exc:  # noqa: BLE001 - one bad lead must not stop the batch
            outcomes.append(Outcome(item, error=exc))
    return outcomes


class PerLeadLogic(ABC):
    """A StageLogic whose leads are decided one by one, with no I/O of its own: subclasses set
    ``job`` and ``accepts`` and write ``decide``."""

    job: ClassVar[JobName]
    accepts: ClassVar[tuple[type[LeadEvent], ...]]

    @abstractmethod
    def decide(self, item: Inbound, ctx: RunContext) -> Sequence[Envelope]:
        """The events that one input lead produces."""

    async def process(self, items: Sequence[Inbound], ctx: RunContext) -> list[Outcome]:
        return decide_each(items, lambda item: self.decide(item, ctx))

    async def published(self, sent: Sent, ctx: RunContext) -> None:
        return None


def fair_order(partitions: Sequence[TopicPartition], served: Counter[TopicPartition],
               start: int, owner: Callable[[str], object] = lambda topic: None,
               ) -> list[TopicPartition]:
    """Partitions to take from next: those of the least served owner (``owner`` of a topic:
    its tenant) first, then the least served partition, ties in a rotating order; so a cap
    smaller than a batch is spread over every tenant and partition with work."""
    ordered = sorted(partitions, key=lambda tp: (tp.topic, tp.partition))
    if not ordered:
        return []
    by_owner: Counter[object] = Counter()
    for tp, n in served.items():
        by_owner[owner(tp.topic)] += n
    k = start % len(ordered)
    rotated = ordered[k:] + ordered[:k]
    # stable: ties keep the rotation
    return sorted(rotated, key=lambda tp: (by_owner[owner(tp.topic)], served[tp]))


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, drainer: TopicDrainer) -> None:
        self.drainer = drainer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Let the batches in flight finish and commit before their partitions move elsewhere.
        async with self.drainer.batch_lock:
            await self.drainer.settled()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # Between runs nothing is consumed; during one, only the run's topics.
        outside = [tp for tp in assigned if not self.drainer.in_run(tp)]
        self.drainer.consumer.pause(*outside)
        self.drainer.seen_partitions.update(set(assigned) - set(outside))


@dataclass(frozen=True, slots=True)
class _Processed:
    """A batch decided: the outcomes to report once published, and what to publish."""

    batch: list[ConsumerRecord]
    done: list[Outcome]
    dead: list[DeadLettered]
    #: The batch's records, and its dead letters, per tenant (the run's manifest).
    tenants: Counter[str]
    failed_tenants: Counter[str]

    @property
    def outputs(self) -> list[Envelope]:
        return [e for outcome in self.done for e in outcome.events]


@dataclass(frozen=True, slots=True)
class _Finishing:
    """A processed batch being published, reported and committed in the background."""

    processed: _Processed
    event_ids: frozenset[UUID]
    task: asyncio.Task[None]


@dataclass(slots=True)
class _Tally:
    """A run's inputs, and its dead letters, per tenant (every input is counted once)."""

    by_tenant: Counter[str] = field(default_factory=Counter)
    failed_by_tenant: Counter[str] = field(default_factory=Counter)

    def counts(self) -> RunCounts:
        return tenant_counts(self.by_tenant, self.failed_by_tenant)


class TopicDrainer:
    """Executor for stages that drain an input topic in consumer group ``stage.<job>``."""

    #: Consecutive empty polls after which a run treats its partitions as drained.
    EMPTY_POLLS_TO_DRAIN = 2
    POLL_MS = 150
    #: How long an instance with work left waits for peers to give back unused budget.
    RELEASE_GRACE = 1.0

    def __init__(self, logic: StageLogic, *, topics: Sequence[Topic], bootstrap_servers: str,
                 topic_config: TopicsConfig, publisher: Publisher, stage: StageConfig,
                 instance_id: str, tenants: Collection[str] | None = None) -> None:
        self.logic = logic
        self.job = logic.job
        self.topic_config = topic_config
        # The input topic of every tenant served (``tenants``; None: all), the shared one first.
        self.topic_names = [n for t in topics for n in topic_config.names(t, tenants)]
        #: Each input topic's tenant (None: the shared topic), read off its name once.
        self._tenant_of = {n: topic_config.tenant_of(n) for n in self.topic_names}
        self.bootstrap_servers = bootstrap_servers
        self.prefix = topic_config.prefix
        self.publisher = publisher
        self.stage = stage
        self.instance_id = instance_id
        self.running = False
        self.batch_lock = asyncio.Lock()
        self.seen_partitions: set[TopicPartition] = set()
        self._consumer_lock = asyncio.Lock()
        self._idle_poll_ms = int(stage.idle_poll.total_seconds() * 1000)
        self._idle_task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._rotation = 0
        self._finishing: _Finishing | None = None
        #: The topics of the run in progress (empty between runs).
        self._run_topics: frozenset[str] = frozenset()
        #: Whether the run takes from several tenants' topics (each gets a fair share).
        self._tenants_share_run = False

    def run_topics(self, tick: TickEmitted) -> list[str]:
        """The topics a run of ``tick`` drains: a tenant with topics of its own, only its
        topics; any other tick, every topic this instance serves."""
        if self.topic_config.isolated(tick.tenant_id):
            own = {self.topic_config.name(t, tick.tenant_id) for t in STAGE_INPUTS[self.job]}
            return [name for name in self.topic_names if name in own]
        return list(self.topic_names)

    async def skip_reason(self, tick: TickEmitted) -> str | None:
        """A run for a tenant with topics of its own drains those (skipped where this instance
        does not serve it); a run for one campaign, or for a tenant sharing the lead topics, is
        refused: a shared partition holds every tenant's leads in arrival order, and taking one
        tenant's apart would block the partition or lose the others' (docs/architecture.md,
        "Tenants")."""
        if not tick.scoped:
            return None
        if tick.campaign_id is not None or not self.topic_config.isolated(tick.tenant_id):
            return SCOPE_UNSUPPORTED
        return None if self.run_topics(tick) else TENANT_NOT_SERVED

    def in_run(self, tp: TopicPartition) -> bool:
        """Whether ``tp`` belongs to the run in progress."""
        return self.running and tp.topic in self._run_topics

    def _run_assignment(self) -> set[TopicPartition]:
        return {tp for tp in self.consumer.assignment() if self.in_run(tp)}

    def _numbering(self, names: Sequence[str]) -> tuple[dict[str, int], int]:
        """Where each topic's partitions start in a numbering of ``names``' partitions, in
        order, and how many there are."""
        first, total = {}, 0
        for name in names:
            first[name] = total
            total += len(self.consumer.partitions_for_topic(name) or ())
        return first, total

    @property
    def consumer(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "TopicDrainer.start() was not called"
        return self._consumer

    async def start(self, *, ready_timeout: float = 60.0) -> None:
        """Join the stage's group and wait for a partition assignment."""
        self._consumer = kafka_clients.consumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=stage_group(self.job, self.prefix),
            client_id=f"leadflow-{self.job.value}-{self.instance_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.stage.batch_size,
            # The broker answers a fetch once it holds 64 KB for us (about 50 events) or after
            # 100 ms. With the default of 1 byte every few records written upstream cost a
            # fetch round trip, in this process and in the broker, for at most 100 ms more
            # per hop (measured in docs/performance.md). A run still ends only when its
            # position reaches the high watermark, so a held fetch never ends one early.
            fetch_max_wait_ms=100, fetch_min_bytes=64 * 1024,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            max_poll_interval_ms=300_000,
        )
        await kafka_clients.start(self._consumer)
        await wait_for_topics(self._consumer, self.topic_names, self.job.value)
        self._consumer.subscribe(self.topic_names, listener=_Rebalance(self))
        self._idle_task = asyncio.create_task(self._idle_loop(), name=f"{self.job}-idle-poll")
        give_up = time.monotonic() + ready_timeout
        while not self._consumer.assignment():
            if time.monotonic() > give_up:
                raise InfrastructureError(
                    f"{self.job.value}: no partition of {self.topic_names} was assigned within "
                    f"{ready_timeout:.0f}s; check that the topics exist (leadflow topics create)")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._idle_task is not None:
            self._idle_task.cancel()
            await asyncio.gather(self._idle_task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()

    async def _idle_loop(self) -> None:
        # Polling paused partitions keeps the member alive (max_poll_interval_ms) without consuming.
        while True:
            async with self._consumer_lock:
                records = await self.consumer.getmany(timeout_ms=self._idle_poll_ms)
                for tp, batch in records.items():  # a partition assigned mid-poll: hand it back
                    self.consumer.seek(tp, batch[0].offset)
            await asyncio.sleep(0)

    def assigned_partitions(self) -> tuple[int, ...]:
        """Partitions this instance owns now, numbered over all its input topics (none before
        it joined its group)."""
        if self._consumer is None:
            return ()
        first, _ = self._numbering(self.topic_names)
        return tuple(sorted(first[tp.topic] + tp.partition for tp in self._consumer.assignment()
                            if tp.topic in first))

    def partitions_total(self) -> int:
        """Partitions of the run in progress (between runs: of every input topic)."""
        return self._numbering(sorted(self._run_topics) or self.topic_names)[1]

    async def backlog(self) -> int | None:
        """Messages waiting in this instance's partitions of the run in progress (between runs:
        of every input topic), high watermark minus position."""
        total = 0
        for tp in self._run_assignment() if self.running else self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is None:
                return None
            total += max(0, high - await self.consumer.position(tp))
        return total

    async def execute(self, ctx: RunContext, budget: RunBudget, deadline: float) -> RunResult:
        tally = _Tally()
        timed_out = False
        names = self.run_topics(ctx.tick)
        async with self._consumer_lock:
            self.running, self._run_topics = True, frozenset(names)
            self._tenants_share_run = len({self._tenant_of[n] for n in names}) > 1
            self.seen_partitions = self._run_assignment()
            self.consumer.resume(*self.seen_partitions)
            try:
                timed_out = await self._drain(ctx, budget, deadline, tally)
                backlog = await self.backlog()
            finally:
                self.consumer.pause(*self.consumer.assignment())
                self.running, self._run_topics = False, frozenset()
        # Partitions are numbered over the run's topics, so every instance's part of the run
        # numbers them alike and the run is complete once the parts cover 0..total-1.
        first, total = self._numbering(names)
        partitions = {first[tp.topic] + tp.partition for tp in self.seen_partitions
                      if tp.topic in first}
        return RunResult(counts=tally.counts(), partitions=tuple(sorted(partitions)),
                         partitions_total=total, backlog=backlog, timed_out=timed_out)

    async def _drain(self, ctx: RunContext, budget: RunBudget, deadline: float,
                     tally: _Tally) -> bool:
        """Take batches until the budget, the backlog or the time is used up. Over a backlog
        (full batches) a batch is published, reported and committed in the background while
        the next one is decided, so the broker's acknowledgement and the commit do not hold up
        the work; one batch at a time is in flight, and batches are committed in order."""
        granted, empty_polls, claims = 0, 0, 0
        served: Counter[TopicPartition] = Counter()
        # A batch a cancelled run left in flight was rewound then; only wait for it to end.
        await self.settled()
        self._finishing = None
        try:
            while True:
                if time.monotonic() >= deadline or ctx.stopping:
                    return True
                if granted == 0:
                    granted = await self._claim(budget, claims)
                    claims += 1
                    if granted == 0:
                        return False
                batch = await self._poll(min(granted, self.stage.batch_size), served)
                if not batch:
                    empty_polls += 1
                    if empty_polls >= self.EMPTY_POLLS_TO_DRAIN and await self._caught_up():
                        return False
                    continue
                empty_polls = 0
                async with self.batch_lock:
                    # Records of partitions revoked since the poll are the new owner's to redo.
                    batch = self._still_assigned(batch)
                    try:
                        processed = await self._process_batch(batch, ctx)
                    except BaseException:
                        self._rewind(batch)
                        await self._settle(also_rewind=batch)
                        raise
                    before: _Finishing | None = self._finishing
                    await self._settle(also_rewind=batch)
                    self._finishing = self._finish_later(
                        processed, ctx, tally, before.event_ids if before else frozenset())
                    if len(batch) < self.stage.batch_size:
                        # No backlog: waiting for the acks lets the next batch fill up. Polling
                        # at once would take the few records come meanwhile, and many small
                        # batches cost more CPU per lead than they save in waits.
                        await self._settle()
                granted -= len(batch)
        finally:
            try:
                await self._settle()
            finally:
                await budget.release(granted)

    async def settled(self) -> None:
        """Return once the batch in flight, if any, is committed or has failed."""
        if self._finishing is not None:
            await asyncio.wait([self._finishing.task])  # its outcome is the drain's to handle

    async def _settle(self, also_rewind: list[ConsumerRecord] | None = None) -> None:
        """Wait for the batch in flight. If it failed, raise its error, with its records and
        ``also_rewind`` (a later batch, decided but not published) sought back to be redone."""
        finishing = self._finishing
        if finishing is None:
            return
        try:
            await finishing.task
        except BaseException:
            self._rewind([*finishing.processed.batch, *(also_rewind or ())])
            raise
        finally:
            if finishing.task.done():  # still visible to a rebalance until then
                self._finishing = None

    def _finish_later(self, processed: _Processed, ctx: RunContext, tally: _Tally,
                      published_before: frozenset[UUID]) -> _Finishing:
        # An output the batch before published already (the same lead in both batches, decided
        # again before the first was reported) is in the log: it is not sent twice.
        outputs = [e for e in processed.outputs if e.event_id not in published_before]
        task = asyncio.create_task(self._finish(processed, outputs, ctx, tally),
                                   name=f"{self.job}-finish-batch")
        return _Finishing(processed, frozenset(e.event_id for e in outputs), task)

    async def _claim(self, budget: RunBudget, claims_made: int) -> int:
        if claims_made == 0:
            return await budget.claim_share(len(self._run_assignment()), self.partitions_total())
        size = later_claim(budget.total, self.partitions_total(), self.stage.batch_size)
        granted = await budget.claim(size)
        if granted or len(self._run_assignment()) >= self.partitions_total():
            return granted
        # The cap looks used up, but peers give back what they claimed and did not need as
        # soon as they are caught up: wait briefly for that while this instance has work left.
        give_up = time.monotonic() + self.RELEASE_GRACE
        while not granted and time.monotonic() < give_up and not await self._caught_up():
            await asyncio.sleep(0.1)
            granted = await budget.claim(size)
        return granted

    async def _poll(self, wanted: int, served: Counter[TopicPartition]) -> list[ConsumerRecord]:
        """Up to ``wanted`` records. A full batch of one tenant's topics comes from whichever
        partitions have data; a smaller grant, or a run over several tenants' topics, is taken
        partition by partition, least served tenant and partition first (round-robin)."""
        if wanted >= self.stage.batch_size and not self._tenants_share_run:
            records = await self.consumer.getmany(timeout_ms=self.POLL_MS, max_records=wanted)
            return [r for part in records.values() for r in part]
        taken: list[ConsumerRecord] = []
        drained: set[TopicPartition] = set()
        # Rounds of an even share per partition of what is still wanted, from what is fetched
        # already (timeout 0): a partition without data is left out of the next round.
        while len(taken) < wanted:
            order = fair_order([tp for tp in self._run_assignment() if tp not in drained],
                               served, self._rotation, self._tenant_of.__getitem__)
            self._rotation += 1
            if not order:
                break
            quota = -(-(wanted - len(taken)) // len(order))
            before = len(taken)
            for tp in order:
                if len(taken) >= wanted:
                    break
                got = (await self.consumer.getmany(
                    tp, timeout_ms=0, max_records=min(quota, wanted - len(taken)))).get(tp, [])
                if len(got) < quota:
                    drained.add(tp)
                served[tp] += len(got)
                taken += got
            if len(taken) == before:
                break
        if not taken:  # nothing fetched yet: wait for the next fetch, take a share of it
            share = -(-wanted // max(len(self._run_assignment()), 1))
            got = await self.consumer.getmany(timeout_ms=self.POLL_MS, max_records=share)
            taken = [r for part in got.values() for r in part]
            for record in taken:
                served[TopicPartition(record.topic, record.partition)] += 1
        return taken

    def _still_assigned(self, batch: list[ConsumerRecord]) -> list[ConsumerRecord]:
        mine = self.consumer.assignment()
        return [r for r in batch if TopicPartition(r.topic, r.partition) in mine]

    def _rewind(self, batch: list[ConsumerRecord]) -> None:
        """Seek back to a failed batch's start (per partition, its lowest offset), so the next
        run redoes it as a restart would."""
        first: dict[TopicPartition, int] = {}
        for record in batch:
            tp = TopicPartition(record.topic, record.partition)
            first[tp] = min(first.get(tp, record.offset), record.offset)
        for tp, offset in first.items():
            if tp in self.consumer.assignment():
                self.consumer.seek(tp, offset)

    async def _caught_up(self) -> bool:
        for tp in self._run_assignment():
            high = self.consumer.highwater(tp)
            if high is None or await self.consumer.position(tp) < high:
                return False
        return True

    async def _process_batch(self, batch: list[ConsumerRecord], ctx: RunContext) -> _Processed:
        items: list[Inbound] = []
        dead: list[DeadLettered] = []
        tenants: Counter[str] = Counter()
        failed_tenants: Counter[str] = Counter()
        first, _ = self._numbering(self.topic_names)
        for record in batch:
            try:
                event = decode(record.value)
                if not isinstance(event, self.logic.accepts):
                    raise EventDecodeError(f"{event.type} does not belong on {record.topic}")
            except EventDecodeError as exc:
                dead.append(dead_letter(record, self.job, exc, attempts=1))
                tenant = self._tenant_of.get(record.topic) or UNKNOWN_TENANT
                tenants[tenant] += 1
                failed_tenants[tenant] += 1
            else:
                items.append(Inbound(record, event, first[record.topic] + record.partition))
                tenants[event.tenant_id] += 1
        done, failed = await self._process_with_retries(items, ctx)
        for outcome, attempts in failed:
            assert outcome.error is not None
            dead.append(dead_letter(outcome.inbound.record, self.job, outcome.error, attempts,
                                    outcome.inbound.event))
            failed_tenants[outcome.inbound.event.tenant_id] += 1
        return _Processed(batch, done, dead, tenants, failed_tenants)

    async def _finish(self, processed: _Processed, outputs: Sequence[Envelope], ctx: RunContext,
                      tally: _Tally) -> None:
        """Publish the batch's outputs, report them to the stage, commit its offsets."""
        dead = processed.dead
        await self.logic.published(await self.publisher.publish([*outputs, *dead]), ctx)
        await self._commit(processed.batch)
        tally.by_tenant.update(processed.tenants)
        tally.failed_by_tenant.update(processed.failed_tenants)
        if dead:
            log.warning("%d message(s) of run %s sent to the dead-letter topic", len(dead),
                        ctx.run_id, extra={"action": "dead_lettered"})

    async def _process_with_retries(
        self, items: list[Inbound], ctx: RunContext,
    ) -> tuple[list[Outcome], list[tuple[Outcome, int]]]:
        """Process, retrying failed leads with backoff: (succeeded, failed with attempts made).

        A batch-level InfrastructureError that outlives the attempts fails the run."""
        failed: list[tuple[Outcome, int]] = []
        done: list[Outcome] = []
        pending = items
        for attempt in range(1, self.stage.max_attempts + 1):
            if not pending:
                break
            try:
                outcomes = await self.logic.process(pending, ctx)
            except InfrastructureError:
                if attempt == self.stage.max_attempts:
                    raise
                await self._backoff(attempt)
                continue
            retry: list[Inbound] = []
            for outcome in outcomes:
                if outcome.error is None:
                    done.append(outcome)
                elif outcome.retriable and attempt < self.stage.max_attempts:
                    retry.append(outcome.inbound)
                else:
                    failed.append((outcome, attempt))
            pending = retry
            if pending:
                await self._backoff(attempt)
        return done, failed

    async def _backoff(self, attempt: int) -> None:
        await asyncio.sleep(self.stage.retry_backoff.total_seconds() * 2 ** (attempt - 1))

    async def _commit(self, batch: list[ConsumerRecord]) -> None:
        offsets: dict[TopicPartition, int] = {}
        mine = self.consumer.assignment()
        for record in batch:
            tp = TopicPartition(record.topic, record.partition)
            if tp in mine:  # a partition revoked meanwhile is committed by its new owner
                offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The partitions moved to another instance mid-batch; it will redo this batch and
            # the deterministic ids make the repeat harmless.
            log.warning("commit after rebalance refused (%s); the new owner will redo it", exc,
                        extra={"action": "commit_refused"})
        except KafkaError as exc:
            raise InfrastructureError(f"offset commit failed: {exc}") from exc
