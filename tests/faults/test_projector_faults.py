"""The projector under faults: Postgres cut off, and poison written straight onto the topics by
another client. Real broker, real Postgres; every wait is bounded."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from events import LeadEvent, Topic, encode
from events.routing import routing_key
from services.pipeline.settings import Settings
from services.projector.service import Projector
from services.runtime.bus import ensure_topics, make_broker
from tests.factories import created_event, happy_path, lead_factory
from tests.harness import TcpProxy, eventually, project, read_models
from tests.projections import assert_models_equal_fold, read_log, reference


async def publish_raw(settings: Settings, items: list[tuple[Topic, bytes, bytes]]) -> None:
    """Write messages as any other client could: (topic, key, value), no contract applied."""
    broker = make_broker(settings.kafka_bootstrap_servers, client_id="test-forger")
    await broker.start()
    try:
        for topic, key, value in items:
            await broker.publish(value, topic.physical(settings.prefix), key=key)
    finally:
        await broker.stop()


def raw(event: LeadEvent) -> tuple[Topic, bytes, bytes]:
    return event.topic, routing_key(event), encode(event)


async def lead_count(settings: Settings) -> int:
    async with read_models(settings) as db:
        return int(await db.fetchval("SELECT count(*) FROM leads"))


@pytest.mark.any_broker
async def test_postgres_cut_off_for_10s_pauses_the_projector_which_resumes_where_it_was(
        settings: Settings) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    first = [raw(created_event()) for _ in range(200)]
    second = [raw(created_event()) for _ in range(200)]
    async with TcpProxy(settings.database_url) as proxy:
        projector = Projector(settings.model_copy(update={"database_url": proxy.dsn}))
        task = asyncio.create_task(projector.run())
        try:
            await publish_raw(settings, first)
            await eventually(lambda: _count_is(settings, 200), 60, "the first 200 leads folded")
            proxy.cut()
            await publish_raw(settings, second)
            await asyncio.sleep(10)  # the outage itself, not a wait for a condition
            assert not task.done(), "the projector exited while Postgres was unreachable"
            assert await lead_count(settings) == 200
            proxy.restore()
            await eventually(lambda: _count_is(settings, 400), 60, "the projector resumed")
            assert not task.done()
        finally:
            projector.request_stop()
            await asyncio.wait_for(task, 30)
    async with read_models(settings) as db:
        await assert_models_equal_fold(db, reference(await read_log(settings), settings))
        assert await db.fetchval("SELECT count(*) FROM lead_events") == 400  # none twice


async def _count_is(settings: Settings, n: int) -> bool:
    return await lead_count(settings) == n


def edited(event: LeadEvent, edit: dict[str, object]) -> bytes:
    body = json.loads(encode(event))
    for path, value in edit.items():
        *parents, leaf = path.split(".")
        target = body
        for name in parents:
            target = target[name]
        target[leaf] = value
    return json.dumps(body).encode()


async def test_poison_on_the_topics_is_dead_lettered_with_the_reason_and_never_folded(
        settings: Settings) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    good = happy_path()  # a real lead, NEW to CONTACTED step 2
    victim = happy_path()[:3]  # a lead that is QUALIFIED (version 3)
    nul = created_event(lead_factory(email="nul@acme.test"))
    newer = created_event(lead_factory(email="newer@acme.test"))
    contacted = json.loads(encode(good[4]))
    contacted["event_id"] = "00000000-0000-4000-8000-000000000001"
    contacted["lead"]["lead_id"] = str(victim[0].lead.lead_id)
    contacted["lead"]["email"] = victim[0].lead.email
    contacted["lead"]["version"] = 2  # CONTACTED straight from NEW: no score, no route
    poison = [
        (Topic.LEADS_NEW, b"nul", edited(nul, {"lead.company": "Ana\x00lytical"})),
        (Topic.LEADS_NEW, b"newer", edited(newer, {"schema_version": 99})),
        (Topic.LEADS_CONTACTED, victim[0].lead.lead_id.bytes, json.dumps(contacted).encode()),
        (Topic.LEADS_CONTACTED, good[1].lead.lead_id.bytes, encode(good[1])),  # scored, misplaced
        (Topic.LEADS_NEW, b"junk", b"\x00\xff not json"),
    ]
    await publish_raw(settings, [raw(e) for e in good] + [raw(e) for e in victim] + poison)
    await project(settings)
    await project(settings)  # folds the dead letters the first pass published
    async with read_models(settings) as db:
        letters = await db.fetch("SELECT origin, error_type, error, payload FROM dead_letters")
        reasons = sorted(r["error"] for r in letters)
        assert len(letters) == 5, reasons
        assert any("U+0000" in r for r in reasons)
        assert any("schema_version 99 is newer" in r for r in reasons)
        assert any("lead.contacted at version 2" in r or "needs version" in r for r in reasons)
        assert any("lead.scored does not belong on leads.contacted" in r for r in reasons)
        originals = {base64.b64decode(r["payload"]["original"]) for r in letters}
        assert b"\x00\xff not json" in originals
        statuses = {r["email"]: (r["status"], r["version"]) for r in
                    await db.fetch("SELECT email, status, version FROM leads")}
        assert statuses == {good[0].lead.email: ("CONTACTED", 6),
                            victim[0].lead.email: ("QUALIFIED", 3)}
        await assert_models_equal_fold(db, reference(await read_log(settings), settings))


async def test_a_message_postgres_refuses_is_parked_and_the_partition_moves_on(
        settings: Settings) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    async with read_models(settings) as db:  # a database that refuses one row, as a bad value would
        await db.execute("""
            CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.email = 'refused@acme.test' THEN
                    RAISE EXCEPTION 'value refused by a check' USING ERRCODE = '22023';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_one BEFORE INSERT ON leads
                FOR EACH ROW EXECUTE FUNCTION refuse_one();
            """)
    events = [created_event(lead_factory(email=f"ok{i}@acme.test")) for i in range(20)]
    refused = created_event(lead_factory(email="refused@acme.test"))
    await publish_raw(settings, [raw(e) for e in [*events[:10], refused, *events[10:]]])
    await project(settings)
    await project(settings)  # folds the dead letter the first pass published
    async with read_models(settings) as db:
        assert await db.fetchval("SELECT count(*) FROM leads") == 20
        letters = await db.fetch("SELECT lead_id, error FROM dead_letters")
    assert [(r["lead_id"], "value refused by a check" in r["error"]) for r in letters] == [
        (refused.lead.lead_id, True)]
