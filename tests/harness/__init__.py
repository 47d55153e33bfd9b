"""Helpers for integration tests: services in-process, ticks that wait for their run, a projector
that catches up on demand."""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message as EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiosmtpd.controller import Controller

from events import Envelope, JobName, JobStarted, LeadStatus, TickEmitted, Topic, decode, stage_group
from events.runs import RunRow
from services.cli.services import build_job_service
from services.clock.manual import manual_tick
from services.harvest.config import HarvestConfig, HarvestSource
from services.harvest.normalize import normalise_row
from services.pipeline.config import LeadflowConfig
from services.pipeline.settings import Settings
from services.projector.follow import RunFollower
from services.projector.service import Projector
from services.qualify.decide import qualify_lead
from services.route.decide import pick_segment
from services.runtime.apache_kafka import missing_tools
from services.runtime.bus import Publisher, ensure_topics, make_broker, publish_once
from services.runtime.config import JobConfig, StageConfig, TopicsConfig
from services.runtime.db import READ_SCHEMA, connect, create_pool
from services.runtime.embedded import free_port
from services.runtime.service import JobService
from services.score.decide import score_lead
from tests.factories import NOW, created_event, lead_factory

#: Where tests leave what a failure needs explained (service logs, screenshots).
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"


def make_config(prefix: str, **sections: object) -> LeadflowConfig:
    """A config for tests: small partition counts and quick stage polling, plus ``sections``."""
    base: dict[str, object] = {
        "topics": TopicsConfig(prefix=prefix, partitions=3),
        "stage": StageConfig(batch_size=500),
    }
    base.update(sections)
    return LeadflowConfig(**base)  # type: ignore[arg-type]


def dsn_for(admin_dsn: str, database: str) -> str:
    """``admin_dsn`` pointed at another database on the same server."""
    base, _, query = admin_dsn.partition("?")
    head, _, _ = base.rpartition("/")
    return f"{head}/{database}" + (f"?{query}" if query else "")


@asynccontextmanager
async def running(settings: Settings, *jobs: JobName,
                  ready_timeout: float = 60) -> AsyncIterator[dict[JobName, JobService]]:
    """Start the stage services for ``jobs`` in this process; stop them on exit."""
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    services = {job: build_job_service(job.value, settings) for job in jobs}
    try:
        await asyncio.gather(*(s.start() for s in services.values()))
        await asyncio.wait_for(asyncio.gather(*(s.wait_ready() for s in services.values())),
                               ready_timeout)
        yield services
    finally:
        await asyncio.gather(*(s.stop() for s in services.values()), return_exceptions=True)


class Ticker:
    """Publishes ticks and follows their runs to the end."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.broker = make_broker(settings.kafka_bootstrap_servers, client_id="test-ticker")
        self.publisher = Publisher(self.broker, settings.pipeline.topics)
        self.follower = RunFollower(settings.kafka_bootstrap_servers, settings.prefix)

    async def __aenter__(self) -> Ticker:
        await ensure_topics(self.settings.kafka_bootstrap_servers, self.settings.pipeline.topics)
        await self.broker.start()
        await self.follower.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.follower.stop()
        await self.broker.stop()

    async def publish(self, tick: TickEmitted) -> None:
        await self.publisher.publish_one(tick)

    async def run(self, job: JobName, *, max_leads: int | None = None, timeout: float = 120,
                  **fields: object) -> RunRow:
        """Tick ``job`` by hand and return its folded run once it ends."""
        tick = manual_tick(job, requested_by="test", max_leads=max_leads, **fields)  # type: ignore[arg-type]
        await self.publish(tick)
        return await self.follower.wait(tick.tick_id, timeout)

    async def wait(self, tick: TickEmitted, timeout: float = 120) -> RunRow:
        return await self.follower.wait(tick.tick_id, timeout)


async def project(settings: Settings) -> int:
    """Run the projector until it has nothing left to read; return messages consumed."""
    projector = Projector(settings)
    await projector.start()
    try:
        return await projector.catch_up(idle_polls=3)
    finally:
        await projector.stop()


async def publish(settings: Settings, events: Sequence[Envelope]) -> None:
    """Publish events to their topics (created if missing) and wait for the broker's acks."""
    await publish_once(settings.kafka_bootstrap_servers, settings.pipeline.topics, events,
                       client_id="test-publish")


async def read_topic(settings: Settings, topic: Topic) -> list[bytes]:
    """Every message value on ``topic`` (this test's prefix), in partition order."""
    consumer = AIOKafkaConsumer(topic.physical(settings.prefix),
                                bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        values: list[bytes] = []
        while batch := await consumer.getmany(timeout_ms=1500):
            values += [r.value for records in batch.values() for r in records]
        return values
    finally:
        await consumer.stop()


@asynccontextmanager
async def read_models(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool whose search_path is the live read-model schema."""
    pool = await create_pool(settings.database_url, search_path=READ_SCHEMA)
    try:
        yield pool
    finally:
        await pool.close()


def kafka_or_skip(what: str = "the Apache Kafka tier") -> None:
    """Skip ``what`` in one line where Java or Maven is missing; under LEADFLOW_REQUIRE_KAFKA
    (set by .ci/run) fail instead, so CI cannot pass without it."""
    if problem := missing_tools():
        if os.environ.get("LEADFLOW_REQUIRE_KAFKA"):
            pytest.fail(f"{what} is required (LEADFLOW_REQUIRE_KAFKA) but {problem}")
        pytest.skip(f"{what} skipped: {problem}")


class TcpProxy:
    """A loopback TCP proxy in front of a Postgres (TCP or Unix socket) that a test can cut
    (every connection closed, new ones refused at once) and restore: an outage of the server
    behind it, without touching the server the rest of the suite shares."""

    def __init__(self, dsn: str) -> None:
        self.target_dsn = dsn
        parts = urlsplit(dsn)
        query = dict(parse_qsl(parts.query))
        port = parts.port or int(query.get("port", 5432))
        socket_dir = query.get("host", "")
        self.unix_path = f"{socket_dir}/.s.PGSQL.{port}" if socket_dir.startswith("/") else None
        self.target = (parts.hostname or "127.0.0.1", port)
        self.up = True
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def cut(self) -> None:
        self.up = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.up = True

    @property
    def dsn(self) -> str:
        """The target's DSN, through the proxy."""
        parts = urlsplit(self.target_dsn)
        creds, _, _ = parts.netloc.rpartition("@")
        host = f"127.0.0.1:{self.port}"
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "port")])
        return urlunsplit(parts._replace(netloc=f"{creds}@{host}" if creds else host, query=query))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.transport.abort()
            return
        try:
            if self.unix_path is not None:
                up_reader, up_writer = await asyncio.open_unix_connection(self.unix_path)
            else:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


async def eventually(check: Callable[[], Awaitable[object]], timeout: float = 30,
                     what: str = "the condition", *, every: float = 0.1) -> None:
    """Poll the async ``check`` until it returns something true; after ``timeout`` seconds,
    fail naming ``what`` and the last thing it returned."""
    give_up = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        if asyncio.get_running_loop().time() > give_up:
            pytest.fail(f"{what} did not happen within {timeout:g}s (last: {result!r})")
        await asyncio.sleep(every)


# --- stage groups: leads in, offsets committed, instances settled -----------------------------


async def publish_leads(settings: Settings, n: int, tag: str) -> set[UUID]:
    events = [created_event(lead_factory(email=f"{tag}{i}@scale.io")) for i in range(n)]
    await publish_once(settings.kafka_bootstrap_servers, settings.pipeline.topics, events)
    return {e.lead.lead_id for e in events}


@asynccontextmanager
async def score_group(settings: Settings) -> AsyncIterator[Callable[[int], Awaitable[int]]]:
    """The score group's committed offset of a leads.new partition, read without joining."""
    topic = Topic.LEADS_NEW.physical(settings.prefix)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                group_id=stage_group(JobName.SCORE, settings.prefix),
                                enable_auto_commit=False)
    await consumer.start()

    async def offset(partition: int) -> int:
        return await consumer.committed(TopicPartition(topic, partition)) or 0

    try:
        yield offset
    finally:
        await consumer.stop()


async def committed(settings: Settings) -> dict[int, int]:
    """The score group's committed offset per partition of leads.new (read only)."""
    async with score_group(settings) as offset:
        return {p: await offset(p) for p in range(settings.pipeline.topics.partitions)}


async def wait_for_progress(settings: Settings, partitions: list[int],
                            before: dict[int, int]) -> int:
    """Until the score group committed past ``before`` on ``partitions``: how many it did."""
    async with score_group(settings) as offset:
        while True:
            done = sum([await offset(p) - before[p] for p in partitions])
            if done > 0:
                return done
            await asyncio.sleep(0.01)


@asynccontextmanager
async def job_starts(settings: Settings) -> AsyncIterator[Callable[[UUID, str], Awaitable[None]]]:
    """A reader of jobs.events, already fetching when the block begins, so a run's start is
    seen as it happens; yields ``started(run_id, part)``, which returns once that part
    reported job.started."""
    topic = Topic.JOBS_EVENTS.physical(settings.prefix)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap_servers,
                                group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False, fetch_max_wait_ms=20)
    await consumer.start()
    seen: set[tuple[UUID, str]] = set()

    async def read(timeout_ms: int) -> None:
        batch = await consumer.getmany(timeout_ms=timeout_ms)
        for record in (r for records in batch.values() for r in records):
            event = decode(record.value)
            if isinstance(event, JobStarted):
                seen.add((event.run_id, event.part))

    async def started(run_id: UUID, part: str) -> None:
        while (run_id, part) not in seen:
            await read(50)

    try:
        while not consumer.assignment():  # assigned and positioned before the caller goes on
            await read(50)
        await read(50)
        yield started
    finally:
        await consumer.stop()


async def wait_for_group(settings: Settings, pids: set[int], timeout: float = 90) -> None:
    """Until the score instances with ``pids`` each own partitions, together all of them.

    Every instance must own some: a member that has not joined yet reports none while the
    others still cover everything, and a tick then would split the cap between the others."""
    give_up = time.monotonic() + timeout
    async with connect(settings.database_url) as conn:
        while True:
            rows = await conn.fetch(
                "SELECT partitions FROM stage_instances WHERE job = 'score' AND pid = ANY($1) "
                "AND last_seen > now() - interval '5 seconds'", list(pids))
            owned = [p for r in rows for p in r["partitions"]]
            everyone = len(rows) == len(pids) and all(r["partitions"] for r in rows)
            if everyone and sorted(owned) == list(range(settings.pipeline.topics.partitions)):
                return
            assert time.monotonic() < give_up, f"group not settled: {rows}"
            await asyncio.sleep(0.25)


# --- the whole pipeline, tick by tick ------------------------------------------------------

#: The stages in pipeline order.
STAGES = (JobName.HARVEST, JobName.SCORE, JobName.QUALIFY, JobName.ROUTE, JobName.CONTACT)


def pipeline_settings(settings: Settings, source: Path, cap: int = 400) -> Settings:
    config = make_config(
        settings.prefix,
        harvest=HarvestConfig(sources=(HarvestSource(path=source, tenant="acme", campaign="q4"),)),
        jobs={job: JobConfig(max_leads_per_run=cap) for job in STAGES},
    )
    return settings.using(config)


async def drain_pipeline(ticker: Ticker) -> dict[JobName, list[int]]:
    """Tick each stage in order until a run finds nothing; return leads processed per run."""
    processed: dict[JobName, list[int]] = defaultdict(list)
    for job in STAGES:
        while True:
            run = await ticker.run(job)
            assert run.status == "completed", (job, run)
            processed[job].append(run.leads_processed)
            if run.leads_processed == 0:
                break
    return processed


# --- outreach: an SMTP server in the test, what the pure functions predict ------------------


@dataclass
class Inbox:
    """What the SMTP server accepted; recipients starting with 'bounce' are refused (550),
    'busy' ones deferred (451)."""

    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.startswith("bounce"):
            return "550 5.1.1 no such user"
        if address.startswith("busy"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=default_policy)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


@dataclass
class SlowInbox:
    """An SMTP sink that takes ``delay`` seconds per message, so kills and stops land among
    sends in flight; keeps each message's X-Leadflow-Key."""

    delay: float = 0.03
    keys: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay)
        self.keys.append(str(message_from_bytes(envelope.content, policy=default_policy)
                             ["X-Leadflow-Key"]))
        return "250 OK"


@contextmanager
def smtp_sink(handler: object) -> Iterator[int]:
    """An SMTP server on a free loopback port, handled by ``handler``; yields the port."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def predict(rows: Sequence[dict[str, str]], config: LeadflowConfig
            ) -> dict[str, tuple[str, str | None]]:
    """email -> (final status, segment) of each source row, by the pure decision functions."""
    predicted: dict[str, tuple[str, str | None]] = {}
    for row in rows:
        lead = normalise_row(row, tenant_id="acme", campaign_id="q4", source="x", at=NOW)
        lead = lead.evolve(score=score_lead(lead, config.score))
        verdict = qualify_lead(lead, config.qualify)
        segment = pick_segment(lead, config.route.segments).name if verdict.qualified else None
        status = LeadStatus.CONTACTED if verdict.qualified else LeadStatus.REJECTED
        predicted[lead.email] = (status.value, segment)
    return predicted
