"""Helpers for the clock tests: schedules in settings, the ticks on the log, and job instances
whose runs are scripted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from events import JobName, TickEmitted, Topic, decode
from services.pipeline.settings import Settings
from services.runtime.budget import RunBudget
from services.runtime.bus import ensure_topics
from services.runtime.config import ClockConfig, JobConfig
from services.runtime.partitions import topic_partitions
from services.runtime.runs import RunContext, RunResult
from services.runtime.service import JobService
from tests.harness import make_config


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def with_jobs(settings: Settings, clock: ClockConfig | None = None, **jobs: JobConfig) -> Settings:
    """``settings`` with these job configs (others keep the nightly defaults)."""
    config = make_config(settings.prefix, jobs={JobName(k): v for k, v in jobs.items()},
                         clock=clock or ClockConfig())
    return settings.using(config)


async def log_ticks(settings: Settings, job: JobName | None = None) -> list[TickEmitted]:
    """Every tick on clock.ticks, in log order."""
    topic = Topic.CLOCK_TICKS.physical(settings.prefix)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in (await topic_partitions(consumer, [topic]))[topic]]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        ticks: list[TickEmitted] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                ticks += [t for r in batch if isinstance(t := decode(r.value), TickEmitted)]
        return [t for t in ticks if job is None or t.job is job]
    finally:
        await consumer.stop()


class ScriptedExecutor:
    """A real Executor whose runs fail while ``failing`` says so; with a ``gate``, the first run
    goes on until the test opens it."""

    def __init__(self, failing: Callable[[TickEmitted], bool] = lambda t: False,
                 gate: asyncio.Event | None = None):
        self.failing = failing
        self.gate = gate
        self.calls: list[TickEmitted] = []
        self.started = asyncio.Event()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def execute(self, ctx: RunContext, budget: RunBudget, deadline: float) -> RunResult:
        self.calls.append(ctx.tick)
        self.started.set()
        if self.gate is not None and len(self.calls) == 1:
            await self.gate.wait()
        if self.failing(ctx.tick):
            raise RuntimeError("scripted failure")
        return RunResult()


@asynccontextmanager
async def serving(settings: Settings, executor: ScriptedExecutor,
                  **more: ScriptedExecutor) -> AsyncIterator[list[JobService]]:
    """An instance of score (and of each job in ``more``) whose runs are scripted; started
    together, since joining consumer groups is what takes time."""
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    executors = {JobName.SCORE: executor, **{JobName(k): v for k, v in more.items()}}
    services = [JobService(job, settings, lambda _, e=e: e) for job, e in executors.items()]
    try:
        await asyncio.gather(*(s.start() for s in services))
        await asyncio.wait_for(asyncio.gather(*(s.wait_ready() for s in services)), 60)
        yield services
    finally:
        await asyncio.gather(*(s.stop() for s in services), return_exceptions=True)
