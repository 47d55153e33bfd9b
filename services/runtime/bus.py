"""The message log: FastStream broker, batched publishing, topic administration."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.producer.message_accumulator import BatchBuilder
from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from events import Envelope, Topic, encode
from events.routing import headers, routing_key, wire_headers

from . import kafka_clients
from .config import TopicsConfig
from .errors import InfrastructureError
from .partitions import topic_partitions
from .topic_specs import wanted_specs

log = logging.getLogger(__name__)


#: Bytes a producer gathers per partition before it sends (aiokafka's default is 16 KB). A
#: stage's batch of 500 lead events is ~40 KB per partition: in 16 KB record batches the
#: producing stage, the broker and every consumer paid per-batch work three times over (CPU
#: per lead in the pipeline: score 108 -> 79 µs, broker 229 -> 175; docs/performance.md).
#: Well under the broker's 1 MB message.max.bytes, which caps a record batch.
BATCH_BYTES = 256 * 1024


def make_broker(bootstrap_servers: str, *, client_id: str = "leadflow") -> KafkaBroker:
    """A FastStream broker that never loses a message by default.

    Producer acks=all (aiokafka defaults to 1) and subscribers ack after the handler returns
    (FastStream's Kafka default acks first); no idempotent producer, which Tansu lacks.
    """
    return KafkaBroker(
        # FastStream takes a string as one address; a cluster's list is comma-separated
        [server.strip() for server in bootstrap_servers.split(",") if server.strip()],
        acks="all",
        enable_idempotence=False,
        ack_policy=AckPolicy.ACK,
        client_id=client_id,
        linger_ms=2,
        max_batch_size=BATCH_BYTES,
        log_level=logging.DEBUG,
        allow_auto_create_topics=False,
        security=kafka_clients.security().faststream(),
    )




def make_producer(bootstrap_servers: str, *, client_id: str) -> AIOKafkaProducer:
    """The plain aiokafka producer a service publishes its batches with, set like
    ``make_broker``'s: acks=all, no idempotent producer."""
    return kafka_clients.producer(bootstrap_servers=bootstrap_servers, client_id=client_id,
                                  acks="all", enable_idempotence=False, linger_ms=2,
                                  max_batch_size=BATCH_BYTES)


_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


@functools.cache
def _words(count: int) -> struct.Struct:
    return struct.Struct(f"<{count}I")


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of ``data`` (Java's ``Utils.murmur2``, unsigned). aiokafka's reads the
    words byte by byte: 3% of a stage's CPU went there, one key per event published."""
    length = len(data)
    h = 0x9747B28C ^ length
    for k in _words(length >> 2).unpack_from(data):
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ (((k ^ (k >> 24)) * _M) & _MASK)
    if tail := length & 3:
        whole = length & ~3
        if tail == 3:
            h ^= data[whole + 2] << 16
        if tail >= 2:
            h ^= data[whole + 1] << 8
        h = ((h ^ data[whole]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def partition_of(key: bytes, partitions: Sequence[int]) -> int:
    """The partition of ``key``, as Kafka's default partitioner (Java's and aiokafka's) picks it."""
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]


@dataclass(frozen=True, slots=True)
class Sent:
    """Events the broker acknowledged, with the bytes each went out as (in the same order): a
    caller that stores an event too reuses them instead of encoding it again."""

    events: Sequence[Envelope]
    values: Sequence[bytes]


class Publisher:
    """Publishes events to their topics; a batch is sent together and awaited together."""

    def __init__(self, broker: KafkaBroker, topics: TopicsConfig) -> None:
        self._broker = broker
        self._topics = topics
        self._producer: AIOKafkaProducer | None = None

    def attach(self, producer: AIOKafkaProducer) -> None:
        """Publish through ``producer`` (started) from now on: FastStream's publish path costs
        about 25 µs more per message, most of a stage's time per lead."""
        self._producer = producer

    async def publish(self, events: Sequence[Envelope]) -> Sent:
        """Send every event and return once the broker acknowledged all of them (acks=all)."""
        values = [encode(event) for event in events]
        if not events:
            return Sent(events, values)
        try:
            if self._producer is not None:
                futures = await self._send_batches(self._producer, events, values)
            else:
                futures = [await self._broker.publish(
                    value, self._topic(event), key=routing_key(event),
                    headers=headers(event), no_confirm=True)
                    for event, value in zip(events, values, strict=True)]
            await asyncio.gather(*futures)
        except KafkaError as exc:
            raise InfrastructureError(f"the broker did not acknowledge a publish: {exc}") from exc
        return Sent(events, values)

    def _topic(self, event: Envelope) -> str:
        # A lead event goes to its tenant's own topic when the tenant has one.
        return self._topics.name(type(event).topic, event.tenant_id)  # type: ignore[attr-defined]

    async def _send_batches(self, producer: AIOKafkaProducer, events: Sequence[Envelope],
                            values: Sequence[bytes]) -> list[asyncio.Future[Any]]:
        """Append each event to a record batch of its partition and send the batches: half the
        CPU of one ``producer.send`` per message. Partitions are chosen as ``send`` chooses
        them (murmur2 of the key), and batches of a partition go out in order."""
        partitions: dict[str, list[int]] = {}
        open_batches: dict[tuple[str, int], BatchBuilder] = {}
        futures: list[asyncio.Future[Any]] = []
        topics: dict[tuple[type[Envelope], str], str] = {}
        for event, value in zip(events, values, strict=True):
            if (topic := topics.get((type(event), event.tenant_id))) is None:
                topic = topics[(type(event), event.tenant_id)] = self._topic(event)
            if (known := partitions.get(topic)) is None:
                known = partitions[topic] = sorted(await producer.partitions_for(topic))
            key = routing_key(event)
            target = (topic, partition_of(key, known))
            record_headers = wire_headers(event)
            batch = open_batches.get(target)
            if batch is None or batch.append(key=key, value=value, timestamp=None,
                                              headers=record_headers) is None:
                if batch is not None:  # full: send it, start the partition's next one
                    futures.append(await producer.send_batch(batch, topic, partition=target[1]))
                batch = open_batches[target] = producer.create_batch()
                # a batch always takes its first record
                batch.append(key=key, value=value, timestamp=None, headers=record_headers)
        for (topic, partition), batch in open_batches.items():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures

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
        await Publisher(broker, topics).publish(list(events))
    finally:
        await broker.stop()


async def ensure_topics(bootstrap_servers: str, topics: TopicsConfig,
                        which: Iterable[Topic] = tuple(Topic)) -> dict[str, int]:
    """Create missing topics with their configured partition counts; return name -> partitions."""
    admin = kafka_clients.admin(bootstrap_servers=bootstrap_servers, client_id="leadflow-admin")
    await kafka_clients.start(admin)
    try:
        which = tuple(which)
        specs = wanted_specs(topics, which)
        wanted = {spec.name: spec.partitions for spec in specs}
        existing = set(await admin.list_topics())
        missing = [NewTopic(spec.name, num_partitions=spec.partitions,
                            replication_factor=spec.replication_factor, topic_configs=spec.configs)
                   for spec in specs if spec.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process was first
                refused = creation_errors(await admin.create_topics(missing))
                if refused:
                    raise InfrastructureError(
                        f"the broker refused to create {'; '.join(refused)}; check "
                        "[topics] replication_factor and min_insync_replicas against the cluster")
            log.info("created %d topics", len(missing), extra={"action": "topics_created"})
        counts = await describe_topics(bootstrap_servers, list(wanted), wait=30.0)
    finally:
        await admin.close()
    if problems := partition_mismatches(wanted, counts):
        raise InfrastructureError(
            f"topics exist with other partition counts than the config: {'; '.join(problems)}. "
            "Set [topics] partitions (or overrides) to match, or, on a broker you may empty, "
            "delete those topics and run `leadflow topics create` again (a broker that "
            "auto-creates topics makes them with its own default)")
    return counts


def partition_mismatches(wanted: dict[str, int], found: dict[str, int]) -> list[str]:
    """'name has N partitions, the config says M' for each existing topic that differs. Pure."""
    return [f"{name} has {found[name]} partitions, the config says {n}"
            for name, n in wanted.items() if found.get(name, 0) not in (0, n)]


def creation_errors(response: Any) -> list[str]:
    """'topic: reason' for each topic a CreateTopics response refused (existing ones are fine)."""
    refused = []
    for entry in response.topic_errors:
        name, code, message = entry[0], entry[1], (entry[2] if len(entry) > 2 else None)
        if code in (0, TopicAlreadyExistsError.errno):
            continue
        refused.append(f"{name}: {message or for_code(code).__name__}")
    return refused


async def describe_topics(bootstrap_servers: str, names: Sequence[str],
                          wait: float = 5.0) -> dict[str, int]:
    """Partition count per topic (0 when the topic does not exist), waiting up to ``wait``
    seconds for topics just created to show up in the metadata."""
    consumer = kafka_clients.consumer(bootstrap_servers=bootstrap_servers, client_id="leadflow-describe")
    await kafka_clients.start(consumer)
    try:
        found = await topic_partitions(consumer, names, wait)
        return {name: len(partitions) for name, partitions in found.items()}
    finally:
        await consumer.stop()
