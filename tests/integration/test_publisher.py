"""The publisher's record batches on the real broker: every event lands once, on the partition
Kafka's default partitioner gives its key, with a lead's events in the order they were
published, across many batches per partition; what it returns is the bytes that landed."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner

from events import Envelope, LeadEvent, LeadScored, Topic, decode
from events.routing import routing_key
from services.pipeline.settings import Settings
from services.runtime.bus import Publisher, ensure_topics, make_broker, make_producer
from tests.factories import created_event, lead_factory, step

LEADS = 400  # 800 events of ~1 KB: several 16 KB batches per partition


Landed = tuple[bytes, Envelope, dict[str, bytes], bytes]  # key, event, headers, value


async def read_partitions(settings: Settings, topic: Topic, expected: int
                          ) -> dict[int, list[Landed]]:
    consumer = AIOKafkaConsumer(topic.physical(settings.prefix),
                                bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        found: dict[int, list[Landed]] = {}
        seen = 0
        while seen < expected and (batch := await consumer.getmany(timeout_ms=3000)):
            for tp, records in batch.items():
                for r in records:
                    assert r.timestamp > 0
                    found.setdefault(tp.partition, []).append(
                        (r.key, decode(r.value), dict(r.headers), r.value))
                    seen += 1
        return found
    finally:
        await consumer.stop()


async def test_a_batch_lands_once_per_event_on_its_keys_partition_in_order(
        settings: Settings) -> None:
    counts = await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    events: list[LeadEvent] = []
    for i in range(LEADS):
        created = created_event(lead_factory(email=f"p{i}@example.com"))
        events += [created, step(LeadScored, created)]
    producer = make_producer(settings.kafka_bootstrap_servers, client_id="test-publisher")
    await producer.start()
    try:
        publisher = Publisher(make_broker(settings.kafka_bootstrap_servers), settings.pipeline.topics)
        publisher.attach(producer)
        sent = await publisher.publish(events)
    finally:
        await producer.stop()

    # The bytes returned are the bytes that landed, which a caller may store instead of
    # encoding the event again.
    assert sent.events == events and len(sent.values) == len(events)
    as_sent = {e.event_id: v for e, v in zip(sent.events, sent.values, strict=True)}
    partitioner = DefaultPartitioner()
    for topic in (Topic.LEADS_NEW, Topic.LEADS_SCORED):
        n = counts[topic.physical(settings.prefix)]
        published = [e for e in events if type(e).topic is topic]
        by_partition = await read_partitions(settings, topic, len(published))
        landed = [e.event_id for msgs in by_partition.values() for _, e, _, _ in msgs]
        assert sorted(landed) == sorted(e.event_id for e in published)  # each once
        assert len(by_partition) > 1
        for partition, messages in by_partition.items():
            for key, event, headers, value in messages:
                assert key == routing_key(event)
                assert partition == partitioner(key, list(range(n)), list(range(n)))
                assert headers["type"] == event.type.encode()
                assert value == as_sent[event.event_id]
            # the partition holds its events in publish order
            order = [e.event_id for e in published if e.event_id in
                     {m[1].event_id for m in messages}]
            assert [m[1].event_id for m in messages] == order
