"""An independent client on leadflow's topics: confluent-kafka (librdkafka, C) reads the lead
topics as schemas/asyncapi.json documents them (key, headers, JSON payload) and publishes a
manual tick by hand, which runs the stage like any other tick."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from events import JobName, Topic
from services.harvest.config import HarvestConfig, HarvestSource
from services.pipeline.settings import Settings
from tests.factories import source_rows, write_csv
from tests.harness import Ticker, make_config, running

LEADS = 40


def read_all(bootstrap: str, topics: list[str], expected: int, timeout: float = 60) -> list[Any]:
    """Every message of ``topics`` read by librdkafka, without a consumer group."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"interop-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "broker.address.family": "v4"})
    try:
        metadata = consumer.list_topics(timeout=15)
        partitions = [TopicPartition(t, p, 0) for t in topics for p in metadata.topics[t].partitions]
        consumer.assign(partitions)
        messages: list[Any] = []
        give_up = time.monotonic() + timeout
        while len(messages) < expected and time.monotonic() < give_up:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            messages.append(message)
        return messages
    finally:
        consumer.close()


def publish_tick(bootstrap: str, topic: str, tick: dict[str, Any]) -> None:
    """Produce one tick with acks=all and wait for its delivery report."""
    delivered: list[Any] = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": False, "broker.address.family": "v4"})
    producer.produce(topic, json.dumps(tick).encode(), key=tick["job"].encode(),
                     headers=[("type", b"tick.emitted")],
                     on_delivery=lambda error, message: delivered.append(error))
    assert producer.flush(30) == 0, "the tick was not delivered within 30s"
    assert delivered == [None], delivered


async def test_librdkafka_reads_the_lead_topics_and_ticks_a_stage(
        settings: Settings, tmp_path: Path) -> None:
    source = write_csv(tmp_path / "leads.csv", source_rows(LEADS))
    settings = settings.using(make_config(settings.prefix, harvest=HarvestConfig(
        sources=(HarvestSource(path=source, tenant="acme", campaign="q4"),))))
    bootstrap = settings.kafka_bootstrap_servers
    async with running(settings, JobName.HARVEST, JobName.SCORE), Ticker(settings) as ticker:
        assert (await ticker.run(JobName.HARVEST)).leads_succeeded == LEADS

        created = await asyncio.to_thread(
            read_all, bootstrap, [Topic.LEADS_NEW.physical(settings.prefix)], LEADS)
        assert len(created) == LEADS
        for message in created:
            payload = json.loads(message.value())
            headers = dict(message.headers() or [])
            assert headers["type"] == b"lead.created"  # as schemas/asyncapi.json says
            assert set(headers) <= {"type", "content-type", "correlation_id"}
            assert payload["type"] == "lead.created"
            assert message.key() == uuid.UUID(payload["lead"]["lead_id"]).bytes

        # A tick written by hand, as the JSON Schema in schemas/events/ describes it.
        now = datetime.now(UTC).isoformat()
        tick_id = uuid.uuid4()
        tick = {"type": "tick.emitted", "schema_version": 1, "event_id": str(tick_id),
                "occurred_at": now, "recorded_at": now, "tenant_id": "*", "job": "score",
                "scheduled_for": now, "source": "manual", "requested_by": "librdkafka"}
        await asyncio.to_thread(publish_tick, bootstrap, Topic.CLOCK_TICKS.physical(settings.prefix),
                                tick)
        run = await ticker.follower.wait(tick_id, 120)
        assert (run.status, run.leads_processed) == ("completed", LEADS)

        scored = await asyncio.to_thread(
            read_all, bootstrap, [Topic.LEADS_SCORED.physical(settings.prefix)], LEADS)
        assert {json.loads(m.value())["type"] for m in scored} == {"lead.scored"}
        assert len(scored) == LEADS
