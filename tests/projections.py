"""Reference folds for tests: read a whole log back and fold it with the projector's pure fold,
then compare with what the projector wrote."""

from __future__ import annotations

from collections import Counter
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from events import Topic
from events.runs import PartRow, RunRow
from services.pipeline.settings import Settings
from services.projector.fold import Changes, Loaded, Positioned, admit, fold
from services.projector.rows import MetricsRow
from services.projector.store import DEAD_LETTER_COLUMNS, LEAD_COLUMNS, dead_letter_row, lead_row
from services.runtime.partitions import topic_partitions


async def read_log(settings: Settings) -> list[Positioned]:
    """Every message of every topic, partition by partition, in offset order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        found = await topic_partitions(consumer, [t.physical(settings.prefix) for t in Topic])
        tps = [TopicPartition(name, p) for name, partitions in found.items() for p in partitions]
        consumer.assign(tps)
        logical = {t.physical(settings.prefix): t for t in Topic}
        out: list[Positioned] = []
        while batch := await consumer.getmany(timeout_ms=1500, max_records=10_000):
            for records in batch.values():
                for r in records:
                    event, _ = admit(r.value, logical.get(r.topic))
                    out.append(Positioned(r.topic, r.partition, r.offset, event))
        out.sort(key=lambda p: (p.topic, p.partition, p.offset))
        return out
    finally:
        await consumer.stop()


def reference(log: list[Positioned], settings: Settings) -> Changes:
    return fold(log, Loaded(), retention=settings.pipeline.retention.max_age)


async def assert_models_equal_fold(db: asyncpg.Pool, expected: Changes) -> None:
    """Every read model equals the fold of the whole log."""
    leads = await db.fetch(f"SELECT {', '.join(LEAD_COLUMNS)} FROM leads")  # noqa: S608
    assert {r["lead_id"]: tuple(r.values()) for r in leads} == {
        lead_id: lead_row(e) for lead_id, e in expected.leads.items()}
    ids = {r["event_id"] for r in await db.fetch("SELECT event_id FROM lead_events")}
    assert ids == {p.event.event_id for p in expected.lead_events if p.event is not None}
    letters = await db.fetch(f"SELECT {', '.join(DEAD_LETTER_COLUMNS)} FROM dead_letters")  # noqa: S608
    assert {r["event_id"]: _jsonless(tuple(r.values())) for r in letters} == {
        e.event_id: _jsonless(dead_letter_row(e)) for e in expected.dead_letters}
    runs = {r["run_id"]: RunRow.from_row(r) for r in await db.fetch("SELECT * FROM job_runs")}
    assert runs == expected.runs
    parts = {(r["run_id"], r["part"]): PartRow.from_row(r)
             for r in await db.fetch("SELECT * FROM job_run_parts")}
    assert parts == expected.parts
    metrics = {(r["job"], r["tenant_id"]): MetricsRow.from_row(r)
               for r in await db.fetch("SELECT * FROM job_metrics")}
    assert metrics == expected.metrics
    daily = {(r["day"], r["tenant_id"], r["campaign_id"], r["metric"]): r["count"]
             for r in await db.fetch("SELECT * FROM pipeline_daily")}
    assert daily == dict(expected.daily)
    counts = {(r["tenant_id"], r["campaign_id"], r["status"]): r["n"]
              for r in await db.fetch("SELECT * FROM lead_counts")}
    assert counts == dict(Counter((e.lead.tenant_id, e.lead.campaign_id, e.lead.status.value)
                                  for e in expected.leads.values()))


def _jsonless(row: tuple[Any, ...]) -> tuple[Any, ...]:
    # The payload column round-trips through JSON; compare the rest exactly.
    return row[:-1]
