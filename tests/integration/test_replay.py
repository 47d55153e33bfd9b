"""Replays on the real broker and Postgres: a new scoring model re-scores and re-qualifies past
leads while the contact ledger stays as it was; an interrupted replay resumes without
duplicates; a dry run publishes nothing; offsets for times hold on Tansu."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from typer.testing import CliRunner

from events import JobName, Topic, decode, utcnow
from services.cli.main import app
from services.pipeline.settings import Settings
from services.qualify.decide import qualify_lead
from services.replay import store
from services.replay.current import lead_from_row
from services.replay.engine import Replayer
from services.replay.errors import ReplayError
from services.replay.offsets import assign, high_watermarks, offsets_for_time, search_offset
from services.replay.spec import ReplaySpec
from services.runtime.bus import Publisher, ensure_topics, make_broker
from services.runtime.db import create_pool
from services.runtime.partitions import topic_partitions
from services.score.config import ScoreConfig
from services.score.decide import score_lead
from tests.factories import created_event, lead_factory, source_rows, write_csv
from tests.harness import (
    STAGES,
    Ticker,
    drain_pipeline,
    pipeline_settings,
    project,
    read_models,
    read_topic,
    running,
)

#: The new model: every listed country is worth much more, so many rejected leads now qualify.
NEW_MODEL = ScoreConfig(model_version="icp-v2", country={
    "US": 45, "CA": 45, "GB": 45, "DE": 45, "FR": 45, "NL": 45, "SE": 45, "AU": 45, "BR": 40,
    "IN": 40})


def with_model(settings: Settings, model: ScoreConfig) -> Settings:
    return settings.using(settings.pipeline.model_copy(update={"score": model}))


async def drain(ticker: Ticker, *jobs: JobName) -> None:
    for job in jobs:
        while (run := await ticker.run(job)).leads_processed:
            assert run.status == "completed", (job, run)


async def leads(settings: Settings) -> dict[Any, dict[str, Any]]:
    async with read_models(settings) as db:
        return {r["lead_id"]: dict(r) for r in await db.fetch("SELECT * FROM leads")}


async def ledger(settings: Settings) -> dict[str, dict[str, Any]]:
    async with read_models(settings) as db:
        return {r["idempotency_key"]: dict(r) for r in await db.fetch("SELECT * FROM contact_ledger")}


async def test_a_new_model_rescores_and_requalifies_past_leads_but_never_contacts_anyone_twice(
        settings: Settings, tmp_path: Path) -> None:
    since = utcnow() - timedelta(seconds=2)
    base = pipeline_settings(settings, write_csv(tmp_path / "leads.csv", source_rows(300)),
                             cap=1000)
    replay_settings = with_model(base, NEW_MODEL)
    async with running(base, *STAGES), Ticker(base) as ticker:
        await drain_pipeline(ticker)
        await project(base)
        before, ledger_before = await leads(base), await ledger(base)
        contacted = {k for k, r in before.items() if r["status"] == "CONTACTED"}
        redecided = {k for k, r in before.items() if r["status"] != "CONTACTED"}
        assert contacted and redecided

        report = await Replayer(replay_settings, ReplaySpec(
            JobName.SCORE, from_at=since, batch_size=70, requested_by="test")).run()
        await project(base)
        # The downstream stages take the re-scored leads at their next runs, as usual.
        await drain(ticker, JobName.QUALIFY, JobName.ROUTE, JobName.CONTACT)
    await project(base)

    counts = report.counts
    assert (report.status, counts.events_read, counts.kept) == ("completed", 300, len(contacted))
    assert (counts.in_flight, counts.missing, counts.failed, counts.unchanged) == (0, 0, 0, 0)
    assert counts.replayed == len(redecided)  # the model version changes every card

    after, ledger_after = await leads(base), await ledger(base)
    config = replay_settings.pipeline
    newly_contacted = set()
    for lead_id, row in after.items():
        old = before[lead_id]
        if lead_id in contacted:  # kept: same version, same score, same contact history
            assert row == old
            continue
        lead = lead_from_row(row, source=None)
        assert lead.score == score_lead(lead, config.score)
        assert (row["model_version"], old["model_version"]) == ("icp-v2", "icp-v1")
        verdict = qualify_lead(lead, config.qualify)
        assert row["status"] == ("CONTACTED" if verdict.qualified else "REJECTED")
        if verdict.qualified:
            newly_contacted.add(lead_id)
    assert newly_contacted, "the new model should have qualified some rejected leads"

    # Every send made before the replay is untouched; the only new sends are step 1 to leads
    # that qualify for the first time.
    assert {k: v for k, v in ledger_after.items() if k in ledger_before} == ledger_before
    added = [v for k, v in ledger_after.items() if k not in ledger_before]
    assert {v["lead_id"] for v in added} == newly_contacted
    assert {v["step"] for v in added} == {1}

    async with read_models(base) as db:
        # Versions grow by one per event, with no version used twice, for every lead.
        broken = await db.fetch(
            """
            SELECT lead_id FROM lead_events GROUP BY lead_id
            HAVING count(*) <> max(version) OR count(DISTINCT version) <> count(*)
            """)
        assert broken == []
        by_type = {r["type"]: r["n"] for r in await db.fetch(
            "SELECT type, count(*) AS n FROM lead_events WHERE replay_id = $1 GROUP BY type",
            report.replay_id)}
    # The replay id travels with the outputs down to routing (sends are keyed by their step).
    assert by_type["lead.scored"] == len(redecided)
    assert by_type.get("lead.qualified", 0) + by_type.get("lead.rejected", 0) == len(redecided)
    assert by_type["lead.routed"] == len(newly_contacted)


async def score_and_qualify(settings: Settings, tmp_path: Path, n: int) -> Settings:
    """Harvest, score and qualify ``n`` leads, project them; the qualified ones wait for route."""
    base = pipeline_settings(settings, write_csv(tmp_path / "leads.csv", source_rows(n)), cap=1000)
    async with running(base, JobName.HARVEST, JobName.SCORE, JobName.QUALIFY), \
            Ticker(base) as ticker:
        await drain(ticker, JobName.HARVEST, JobName.SCORE, JobName.QUALIFY)
    await project(base)
    return base


class Interrupt(Exception):
    pass


async def test_an_interrupted_replay_resumes_where_it_stopped_and_decides_each_lead_once(
        settings: Settings, tmp_path: Path) -> None:
    since = utcnow() - timedelta(seconds=2)
    base = await score_and_qualify(settings, tmp_path, 200)
    statuses = {r["lead_id"]: r["status"] for r in (await leads(base)).values()}
    rejected = sum(1 for s in statuses.values() if s == "REJECTED")
    qualified = sum(1 for s in statuses.values() if s == "QUALIFIED")
    replay_settings = with_model(base, NEW_MODEL)
    spec = ReplaySpec(JobName.SCORE, from_at=since, batch_size=25, requested_by="test")
    reports: list[int] = []

    def stop_after_three_batches(done: int, total: int, counts: store.Counts) -> None:
        reports.append(done)
        if len(reports) == 4:  # the first report is the start
            raise Interrupt

    with pytest.raises(ReplayError, match=r"resume it with `leadflow replay score --replay-id"):
        await Replayer(replay_settings, spec, progress=stop_after_three_batches).run()
    pool = await create_pool(base.database_url)
    try:
        [open_replay] = await store.recent(pool)
        assert open_replay.status == "failed" and "Interrupt" in (open_replay.error or "")
        read_so_far = open_replay.counts.events_read
        assert 0 < read_so_far < 200
        assert sum(r.next - r.start for r in await store.ranges(pool, open_replay.replay_id)) \
            == read_so_far

        # The same command again resumes the same replay from its positions (once the
        # projector, which runs all along in production, has folded what it published).
        await project(base)
        resumed = await Replayer(replay_settings, spec).run()
        assert (resumed.replay_id, resumed.resumed, resumed.status) == \
            (open_replay.replay_id, True, "completed")
        assert await pool.fetchval("SELECT count(*) FROM replay_leads") == 0  # cleaned up
    finally:
        await pool.close()
    counts = resumed.counts
    assert counts.events_read == 200
    # Qualified leads still wait for route: the live run decides them; rejected are re-scored.
    assert (counts.replayed, counts.in_flight, counts.kept) == (rejected, qualified, 0)

    await project(base)
    published = [decode(v) for v in await read_topic(base, Topic.LEADS_SCORED)]
    replayed = [e for e in published if e.replay_id == resumed.replay_id]
    assert len(replayed) == len({e.event_id for e in replayed}) == rejected  # nothing twice
    assert {e.lead.lead_id for e in replayed} == {k for k, s in statuses.items() if s == "REJECTED"}
    async with read_models(base) as db:
        assert await db.fetchval(
            "SELECT count(*) FROM leads WHERE status = 'SCORED' AND model_version = 'icp-v2'") \
            == rejected
        assert await db.fetchval("SELECT count(*) FROM leads WHERE version = 4") == rejected


async def test_a_dry_run_counts_and_samples_changes_and_publishes_nothing(
        settings: Settings, tmp_path: Path) -> None:
    since = utcnow() - timedelta(seconds=2)
    base = await score_and_qualify(settings, tmp_path, 60)
    rejected = sum(1 for r in (await leads(base)).values() if r["status"] == "REJECTED")
    scored_before = len(await read_topic(base, Topic.LEADS_SCORED))

    report = await Replayer(with_model(base, NEW_MODEL), ReplaySpec(
        JobName.SCORE, from_at=since, dry_run=True, sample_size=5)).run()

    assert (report.dry_run, report.counts.events_read, report.offsets) == (True, 60, 60)
    assert report.counts.replayed == rejected
    assert report.counts.in_flight == 60 - rejected
    assert len(report.samples) == min(5, rejected)
    for sample in report.samples:
        assert sample.status == "REJECTED"
        assert sample.before.endswith("(icp-v1)") and sample.after.endswith("(icp-v2)")
        assert sample.then is not None
    assert len(await read_topic(base, Topic.LEADS_SCORED)) == scored_before
    elsewhere = await Replayer(with_model(base, NEW_MODEL), ReplaySpec(
        JobName.SCORE, from_at=since, dry_run=True, tenant="another-tenant")).run()
    assert (elsewhere.counts.events_read, elsewhere.counts.skipped) == (60, 60)
    assert elsewhere.counts.replayed == elsewhere.counts.in_flight == 0
    pool = await create_pool(base.database_url)
    try:
        assert await store.recent(pool) == []
    finally:
        await pool.close()

    # The same through the command line, with the new model in a config file.
    config = tmp_path / "v2.toml"
    countries = "".join(f"{k} = {v}\n" for k, v in NEW_MODEL.country.items())
    config.write_text(f'[score]\nmodel_version = "icp-v2"\n[score.country]\n{countries}')
    env = {"DATABASE_URL": base.database_url, "LEADFLOW_CONFIG": str(config),
           "KAFKA_BOOTSTRAP_SERVERS": base.kafka_bootstrap_servers,
           "LEADFLOW_TOPIC_PREFIX": base.prefix}
    result = await asyncio.to_thread(CliRunner().invoke, app, [
        "replay", "score", "--from", since.isoformat(), "--dry-run"], env=env)
    said = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "dry run: nothing was published" in said
    assert f"leads whose decision would change │ {rejected}" in said
    assert "sample of decisions that would change" in said and "(icp-v2)" in said


async def test_offsets_for_times_find_the_first_message_at_or_after_a_time_on_tansu(
        settings: Settings) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    broker = make_broker(settings.kafka_bootstrap_servers)
    await broker.start()
    try:
        publisher = Publisher(broker, settings.pipeline.topics)
        await publisher.publish([created_event(lead_factory(email=f"a{i}@x.com")) for i in range(40)])
        await asyncio.sleep(1.2)
        middle = datetime.now(UTC)
        await asyncio.sleep(0.2)
        await publisher.publish([created_event(lead_factory(email=f"b{i}@x.com")) for i in range(30)])
    finally:
        await broker.stop()

    topic = Topic.LEADS_NEW.physical(settings.prefix)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in (await topic_partitions(consumer, [topic]))[topic]]
        highs = await high_watermarks(consumer, tps)
        # What the answer must be: the first record of the second batch in each partition.
        assign(consumer, tps)
        await consumer.seek_to_beginning(*tps)
        expected = dict(highs)
        while batch := await consumer.getmany(timeout_ms=1000):
            for tp, records in batch.items():
                for r in records:
                    if decode(r.value).lead.email.startswith("b"):
                        expected[tp] = min(expected[tp], r.offset)
        target = int(middle.timestamp() * 1000)
        searched = {tp: await search_offset(consumer, tp, 0, highs[tp], target) for tp in tps}
        assert searched == expected
        assert await offsets_for_time(consumer, tps, middle, highs) == expected
        assert sum(highs[tp] - expected[tp] for tp in tps) == 30
        late = middle + timedelta(hours=1)
        assert await offsets_for_time(consumer, tps, late, highs) == highs
    finally:
        await consumer.stop()
