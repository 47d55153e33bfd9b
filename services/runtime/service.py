"""A job's process: a FastStream app whose tick subscription drives the job's runs.

Every instance reads every tick through a consumer group of its own
(``stage.<job>.ticks.<instance>``), so a tick reaches all instances, and one that was down at
tick time resumes from its last committed tick after a restart. The tick's offset is committed
only once the run's outcome is published.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable

import asyncpg
from aiokafka import AIOKafkaProducer, TopicPartition
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker, KafkaMessage

from events import STAGE_INPUTS, EventDecodeError, JobName, TickEmitted, Topic, decode

from . import instances, kafka_clients
from .bus import Publisher, make_broker, make_producer
from .db import DRIVER_ERRORS, create_pool
from .dead_letters import dead_letter
from .drain import StageLogic, TopicDrainer
from .partitions import topic_partitions, wait_for_topics
from .runs import Executor, RunController
from .settings import Settings

log = logging.getLogger(__name__)

ExecutorFactory = Callable[["JobService"], Executor]


def tick_group(job: JobName, instance_id: str, prefix: str = "") -> str:
    """The consumer group through which one instance of ``job`` receives every tick."""
    return f"{prefix}stage.{job.value}.ticks.{instance_id}"


async def start_tick_group_at_end(bootstrap: str, group: str, topic: str) -> None:
    """On an instance's first start, begin at the end of the tick topic (not its whole history).

    Commits the current end offsets for partitions the group never committed, so a restart
    always resumes from a committed position and never skips a tick sent while it was down.
    """
    consumer = kafka_clients.consumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False, client_id=f"{group}-init")
    await consumer.start()
    try:
        await wait_for_topics(consumer, [topic], group)
        partitions = (await topic_partitions(consumer, [topic]))[topic]
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        fresh = [tp for tp in tps if await consumer.committed(tp) is None]
        if fresh:
            ends = await consumer.end_offsets(fresh)
            await consumer.commit({tp: ends[tp] for tp in fresh})
    finally:
        await consumer.stop()


def topic_stage(job: JobName, settings: Settings,
                logic_factory: Callable[[JobService], StageLogic]) -> JobService:
    """A JobService whose runs drain the job's input topic through ``logic``."""

    def executor(service: JobService) -> Executor:
        return TopicDrainer(
            logic_factory(service), topics=STAGE_INPUTS[job],
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic_config=service.config.topics, tenants=settings.served_tenants,
            publisher=service.publisher, stage=service.config.stage,
            instance_id=service.instance_id)

    return JobService(job, settings, executor)


class JobService:
    """Wires one job's executor to its ticks, its publisher and its database pool."""

    #: How often the instance checks in (stage_instances.last_seen, partitions it owns).
    HEARTBEAT_SECONDS = 1.0

    def __init__(self, job: JobName, settings: Settings, executor_factory: ExecutorFactory) -> None:
        self.job = job
        self.settings = settings
        self.config = settings.pipeline
        self.instance_id = settings.instance_id
        self.prefix = settings.prefix
        self.broker: KafkaBroker = make_broker(settings.kafka_bootstrap_servers,
                                               client_id=f"leadflow-{job.value}")
        self.publisher = Publisher(self.broker, self.config.topics)
        self.pool: asyncpg.Pool | None = None
        self._producer: AIOKafkaProducer | None = None
        self.executor: Executor | None = None
        self.controller: RunController | None = None
        self._executor_factory = executor_factory
        self._ready = asyncio.Event()
        self._stopped = asyncio.Event()
        self._identity: asyncpg.Connection | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        job_config = self.config.job(job)
        self._tick_topic = Topic.CLOCK_TICKS.physical(self.prefix)
        self._tick_group = tick_group(job, self.instance_id, self.prefix)
        self.tick_subscriber = self.broker.subscriber(
            self._tick_topic,
            group_id=self._tick_group,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            # The handler runs the whole run; the tick consumer must not be evicted meanwhile.
            max_poll_interval_ms=int((job_config.timeout_seconds + 120) * 1000),
        )
        self.tick_subscriber(self._on_tick)
        self.app = FastStream(self.broker, on_startup=[self._prepare],
                              after_startup=[self._announce], on_shutdown=[self._report_pending],
                              after_shutdown=[self._close], logger=None)

    @property
    def db(self) -> asyncpg.Pool:
        assert self.pool is not None, "JobService is not started"
        return self.pool

    async def _prepare(self) -> None:
        # First: a second process with this instance id must stop before it joins any group.
        self._identity = await instances.hold_identity(
            self.settings.database_url, self.prefix, self.job.value, self.instance_id)
        # Session locks live on connections of their own (runtime.locks): none is in the pool.
        self.pool = await create_pool(self.settings.database_url, max_size=4,
                                      session_state=False)
        self._producer = make_producer(self.settings.kafka_bootstrap_servers,
                                       client_id=f"leadflow-{self.job.value}-out")
        await self._producer.start()
        self.publisher.attach(self._producer)
        self.executor = self._executor_factory(self)
        await self.executor.start()
        self.controller = RunController(self.job, self.config.job(self.job), self.executor,
                                        self.publisher, self.pool, self.instance_id)
        await start_tick_group_at_end(self.settings.kafka_bootstrap_servers, self._tick_group,
                                      self._tick_topic)

    async def _announce(self) -> None:
        consumer = self.tick_subscriber.consumer
        while consumer is None or not consumer.assignment():
            await asyncio.sleep(0.05)
            consumer = self.tick_subscriber.consumer
        await instances.announce(self.db, self.job.value, self.instance_id, os.getpid())
        self._heartbeat_task = asyncio.create_task(self._heartbeat(),
                                                   name=f"{self.job}-heartbeat")
        self._ready.set()
        log.info("%s instance %s ready", self.job.value, self.instance_id,
                 extra={"action": "instance_ready"})

    async def _heartbeat(self) -> None:
        """Keep last_seen fresh and the owned partitions current (for `leadflow status`)."""
        sent: tuple[int, ...] | None = None
        sent_at = 0.0
        while True:
            await asyncio.sleep(self.HEARTBEAT_SECONDS)
            owned = getattr(self.executor, "assigned_partitions", None)
            partitions = owned() if callable(owned) else None
            if partitions == sent and time.monotonic() - sent_at < 10:
                continue
            try:
                await instances.heartbeat(self.db, self.job.value, self.instance_id, partitions)
            except DRIVER_ERRORS as exc:
                log.warning("heartbeat not recorded: %s", exc, extra={"action": "heartbeat_failed"})
                continue
            sent, sent_at = partitions, time.monotonic()

    async def _report_pending(self) -> None:
        # While the broker still stands: a streak of overlap skips not reported yet.
        if self.controller is not None:
            try:
                await self.controller.flush_streak()
            except Exception:  # shutting down either way
                log.warning("overlap streak lost at shutdown", exc_info=True,
                            extra={"action": "streak_report_failed"})

    async def _close(self) -> None:
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            await asyncio.gather(self._heartbeat_task, return_exceptions=True)
        if self.executor is not None:
            await self.executor.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self.pool is not None:
            await self.pool.close()
        if self._identity is not None:
            await self._identity.close()  # releases the instance id
            self._identity = None

    async def _on_tick(self, msg: KafkaMessage) -> None:
        assert self.controller is not None
        try:
            tick = decode(msg.body)
            if not isinstance(tick, TickEmitted):
                raise EventDecodeError(f"{tick.type} does not belong on {self._tick_topic}")
        except EventDecodeError as exc:
            await self._dead_letter_tick(msg, exc)
            return
        await self.controller.on_tick(tick)

    async def _dead_letter_tick(self, msg: KafkaMessage, exc: Exception) -> None:
        await self.publisher.publish_one(dead_letter(msg.raw_message, self.job, exc, attempts=1))

    async def wait_ready(self) -> None:
        """Return once the instance's consumers are assigned and it is registered."""
        await self._ready.wait()

    async def start(self) -> None:
        await self.app.start()

    async def stop(self) -> None:
        """Let the run in progress end (within the stage's shutdown_grace), then stop."""
        if self.controller is not None:
            await self.controller.shutdown(self.config.stage.shutdown_grace.total_seconds())
        await self.app.stop()

    async def run_forever(self) -> None:
        """Run until SIGINT or SIGTERM, then stop gracefully."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopped.set)
        await self.start()
        try:
            await self._stopped.wait()
        finally:
            await self.stop()
