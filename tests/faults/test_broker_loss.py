"""A broker emptied or replaced: clients never auto-create topics, and `topics create` refuses
topics whose partition counts differ from the config. Real broker."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import UnknownTopicOrPartitionError

from events import Topic
from services.pipeline.settings import Settings
from services.projector.service import Projector
from services.runtime.bus import ensure_topics, publish_once
from services.runtime.embedded import TansuBroker
from services.runtime.errors import InfrastructureError
from tests.factories import created_event
from tests.harness import project, read_models


async def topic_names(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="test-admin")
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_clients_never_make_the_broker_create_a_topic(settings: Settings) -> None:
    missing = Topic.CLOCK_TICKS.physical(settings.prefix)
    consumer = AIOKafkaConsumer(missing, bootstrap_servers=settings.kafka_bootstrap_servers,
                                group_id=None, request_timeout_ms=3000)
    with pytest.raises(UnknownTopicOrPartitionError):  # it waits for the topic, in vain
        await consumer.start()  # asks for the topic's metadata, as a reconnecting client does
    await consumer.stop()
    assert missing not in await topic_names(settings.kafka_bootstrap_servers)


async def test_topics_create_names_a_topic_with_other_partitions_and_the_fix(
        settings: Settings) -> None:
    name = Topic.CLOCK_TICKS.physical(settings.prefix)  # the config says 1 partition
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=4, replication_factor=1)])
    finally:
        await admin.close()
    with pytest.raises(InfrastructureError) as caught:
        await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    assert f"{name} has 4 partitions, the config says 1" in str(caught.value)
    assert "leadflow topics create" in str(caught.value)


async def test_a_broker_replaced_by_an_empty_one_is_named_not_folded_over(
        settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = [created_event() for _ in range(60)]
    await publish_once(settings.kafka_bootstrap_servers, settings.pipeline.topics, first)
    await project(settings)
    empty = TansuBroker(log_file=tmp_path / "tansu.log")  # the replacement: same names, no data
    bootstrap = await asyncio.to_thread(empty.start)
    try:
        replaced = settings.model_copy(update={"kafka_bootstrap_servers": bootstrap})
        await publish_once(bootstrap, settings.pipeline.topics, [created_event()])
        projector = Projector(replaced)
        await projector.start()
        try:
            with caplog.at_level(logging.ERROR, logger="services.projector"):
                await projector.catch_up(idle_polls=3)
        finally:
            await projector.stop()
        behind = {topic for topic, _ in projector.behind}
        assert Topic.LEADS_NEW.physical(settings.prefix) in behind
        assert any("the log ends before offset" in r.getMessage() and "leadflow projector "
                   "rebuild" in r.getMessage() for r in caplog.records)
        async with read_models(settings) as db:
            assert await db.fetchval("SELECT count(*) FROM leads") == 60  # nothing folded over

        adopting = Projector(replaced, adopt_log=True)  # `leadflow projector adopt-log --yes`
        await adopting.start(wait_for_lock=False)
        try:
            await adopting.catch_up(idle_polls=3)
        finally:
            await adopting.stop()
        assert adopting.adopted
    finally:
        await asyncio.to_thread(empty.stop)
    async with read_models(settings) as db:  # history kept, the new log folded on top
        assert await db.fetchval("SELECT count(*) FROM leads") == 61
