"""The message log: FastStream broker, batched publishing, topic administration."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from events import (
    ControlEvent,
    DeadLettered,
    Envelope,
    JobEvent,
    LeadEvent,
    TickEmitted,
    Topic,
    encode,
)

from .config import TopicsConfig
from .errors import InfrastructureError

log = logging.getLogger(__name__)


def make_broker(bootstrap_servers: str, *, client_id: str = "leadflow") -> KafkaBroker:
    """A FastStream broker that never loses a message by default.

    Producer acks=all (aiokafka defaults to 1) and subscribers ack after the handler returns
    (FastStream's Kafka default acks first); no idempotent producer, which Tansu lacks.
    """
    return KafkaBroker(
        bootstrap_servers,
        acks="all",
        enable_idempotence=False,
        ack_policy=AckPolicy.ACK,
        client_id=client_id,
        linger_ms=2,
        log_level=logging.DEBUG,
        allow_auto_create_topics=False,
    )


def routing_key(event: Envelope) -> bytes:
    """Partition key: a lead's events stay in order, a run's job events too."""
    if isinstance(event, LeadEvent):
        return event.lead.lead_id.bytes
    if isinstance(event, TickEmitted):
        return event.job.value.encode()
    if isinstance(event, JobEvent):
        return event.run_id.bytes
    if isinstance(event, ControlEvent):
        return event.key.encode()
    if isinstance(event, DeadLettered):
        return (event.lead_id.bytes if event.lead_id else (event.source_file or "").encode())
    return event.event_id.bytes


class Publisher:
    """Publishes events to their topics; a batch is sent together and awaited together."""

    def __init__(self, broker: KafkaBroker, prefix: str) -> None:
        self._broker = broker
        self._prefix = prefix

    async def publish(self, events: Sequence[Envelope]) -> None:
        """Send every event and return once the broker acknowledged all of them (acks=all)."""
        if not events:
            return
        futures = []
        for event in events:
            topic = type(event).topic.physical(self._prefix)  # type: ignore[attr-defined]
            futures.append(await self._broker.publish(
                encode(event), topic, key=routing_key(event),
                headers={"type": event.type}, no_confirm=True,
            ))
        try:
            await asyncio.gather(*futures)
        except KafkaError as exc:
            raise InfrastructureError(f"the broker did not acknowledge a publish: {exc}") from exc

    async def publish_one(self, event: Envelope) -> None:
        await self.publish([event])


async def publish_once(bootstrap_servers: str, topics: TopicsConfig, events: Sequence[Envelope],
                       *, client_id: str = "leadflow-cli") -> None:
    """Publish ``events`` from a short-lived client (CLI commands, tests): topics ensured, acks
    awaited, connection closed."""
    await ensure_topics(bootstrap_servers, topics)
    broker = make_broker(bootstrap_servers, client_id=client_id)
    await broker.start()
    try:
        await Publisher(broker, topics.prefix).publish(list(events))
    finally:
        await broker.stop()


async def ensure_topics(bootstrap_servers: str, topics: TopicsConfig,
                        which: Iterable[Topic] = tuple(Topic)) -> dict[str, int]:
    """Create missing topics with their configured partition counts; return name -> partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="leadflow-admin")
    try:
        await admin.start()
    except KafkaError as exc:
        raise InfrastructureError(
            f"cannot reach the broker at {bootstrap_servers} ({exc}); start it or set "
            "KAFKA_BOOTSTRAP_SERVERS") from exc
    try:
        wanted = {t.physical(topics.prefix): topics.partitions_for(t) for t in which}
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, num_partitions=n, replication_factor=1)
                   for name, n in wanted.items() if name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process was first
                await admin.create_topics(missing)
            log.info("created %d topics", len(missing), extra={"action": "topics_created"})
        return await describe_topics(bootstrap_servers, list(wanted))
    finally:
        await admin.close()


async def describe_topics(bootstrap_servers: str, names: Sequence[str]) -> dict[str, int]:
    """Partition count per topic (0 when the topic does not exist)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, client_id="leadflow-describe")
    await consumer.start()
    try:
        result: dict[str, int] = {}
        for _ in range(50):
            await consumer.topics()  # refreshes metadata
            result = {name: len(consumer.partitions_for_topic(name) or ()) for name in names}
            if all(result.values()):
                break
            await asyncio.sleep(0.1)
        return result
    finally:
        await consumer.stop()
