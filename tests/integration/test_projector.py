"""The projector on the real broker and Postgres: job metrics and health, runs folded from parts,
rebuild equal to the live models, retention, and exactly-once under kill -9."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from events import (
    ALL_TENANTS,
    JobName,
    LeadScored,
    ScoreCard,
    TickEmitted,
    TickSource,
    transition,
)
from services.pipeline.settings import Settings
from services.projector.rebuild import (
    MODEL_TABLES,
    SHADOW_SCHEMA,
    plan_shares,
    rebuild,
    table_rows,
)
from services.projector.service import Projector
from services.runtime.bus import ensure_topics
from services.runtime.db import READ_SCHEMA
from services.runtime.errors import InfrastructureError
from tests.factories import (
    created_event,
    happy_path,
    lead_factory,
    run_events,
    source_rows,
    write_csv,
)
from tests.harness import (
    STAGES,
    Ticker,
    eventually,
    pipeline_settings,
    project,
    publish,
    read_models,
    running,
)
from tests.projections import assert_models_equal_fold, read_log, reference

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


async def metrics(settings: Settings, tenant: str = ALL_TENANTS) -> dict:  # type: ignore[type-arg]
    from services.projector.rows import MetricsRow

    await project(settings)
    async with read_models(settings) as db:
        row = await db.fetchrow("SELECT * FROM job_metrics WHERE job = 'score' AND tenant_id = $1",
                                tenant)
    return MetricsRow.from_row(row).as_dict()


async def test_job_metrics_and_health_follow_successes_failures_skips_and_recovery(
        settings: Settings) -> None:
    at = iter(T0 + timedelta(hours=i) for i in range(20))
    S = JobName.SCORE
    await publish(settings, [*run_events(S, "completed", at=next(at), counts=(10, 9, 1), seconds=3),
                             *run_events(S, "completed", at=next(at), counts=(20, 20, 0), seconds=5),
                             *run_events(S, "skipped", at=next(at))])
    m = await metrics(settings)
    assert (m["total_runs"], m["successful_runs"], m["failed_runs"], m["skipped_runs"]) == (3, 2, 0, 1)
    assert (m["success_rate"], m["lead_success_rate"], m["average_duration_seconds"]) == (100.0, 96.67, 4.0)
    assert (m["total_leads_processed"], m["total_leads_succeeded"], m["total_leads_failed"]) == (30, 29, 1)
    assert (m["consecutive_failures"], m["health_status"]) == (0, "healthy")
    assert m["last_success_at"] == (T0 + timedelta(hours=1, seconds=5)).isoformat()

    fail_at = next(at)
    await publish(settings, run_events(S, "failed", at=fail_at, counts=(4, 0, 4)))
    m = await metrics(settings)
    assert (m["consecutive_failures"], m["health_status"], m["success_rate"]) == (1, "degraded", 66.67)
    assert m["last_failure_at"] == (fail_at + timedelta(seconds=1)).isoformat()

    await publish(settings, [*run_events(S, "failed", at=next(at)), *run_events(S, "skipped", at=next(at)),
                             *run_events(S, "failed", at=next(at))])
    m = await metrics(settings)
    assert (m["consecutive_failures"], m["health_status"], m["success_rate"]) == (3, "failed", 40.0)

    await publish(settings, run_events(S, "completed", at=next(at), counts=(5, 5, 0)))
    m = await metrics(settings)
    # recovery resets the streak; 3 of 6 decided runs succeeded: exactly 50% is healthy
    assert (m["consecutive_failures"], m["health_status"], m["success_rate"]) == (0, "healthy", 50.0)

    await publish(settings, run_events(S, "failed", at=next(at)))
    m = await metrics(settings)
    assert (m["consecutive_failures"], m["health_status"], m["success_rate"]) == (1, "degraded", 42.86)
    assert m["total_runs"] == 9 and m["skipped_runs"] == 2
    tenant = await metrics(settings, "acme")
    assert tenant == m  # every run above belonged to tenant acme


async def test_a_run_is_complete_when_its_parts_cover_every_partition(settings: Settings) -> None:
    run_id = uuid.uuid4()
    first = run_events(JobName.SCORE, "completed", at=T0, counts=(7, 7, 0), part="a",
                       partitions=(0, 1), total=3, run_id=run_id)
    await publish(settings, first)
    await project(settings)
    async with read_models(settings) as db:
        row = await db.fetchrow("SELECT * FROM job_runs WHERE run_id = $1", run_id)
        assert (row["status"], row["parts"], row["partitions_covered"]) == ("running", 1, 2)
        assert await db.fetchval("SELECT count(*) FROM job_metrics") == 0
    second = run_events(JobName.SCORE, "completed", at=T0, counts=(3, 2, 1), part="b",
                        partitions=(2,), total=3, run_id=run_id, seconds=4)
    await publish(settings, second)
    await project(settings)
    async with read_models(settings) as db:
        row = await db.fetchrow("SELECT * FROM job_runs WHERE run_id = $1", run_id)
        assert (row["status"], row["parts"], row["partitions_covered"]) == ("completed", 2, 3)
        assert (row["leads_processed"], row["leads_succeeded"], row["leads_failed"]) == (10, 9, 1)
        assert row["duration_seconds"] == 4.0
        assert await db.fetchval(
            "SELECT total_runs FROM job_metrics WHERE job = 'score' AND tenant_id = '*'") == 1


async def test_a_rebuild_equals_the_live_models_and_swaps_in_while_the_projector_runs(
        settings: Settings, tmp_path: Path) -> None:
    settings = pipeline_settings(settings, write_csv(tmp_path / "l.csv", source_rows(150)), cap=60)
    async with running(settings, *STAGES), Ticker(settings) as ticker:
        for job in STAGES:
            await ticker.run(job)
        await ticker.run(JobName.SCORE)
    await publish(settings, run_events(JobName.ROUTE, "failed", at=T0))
    live = Projector(settings)
    await live.start()
    try:
        await live.catch_up(idle_polls=3)
        report = await rebuild(settings, swap=False)
        assert report.events > 0
        for table in MODEL_TABLES:
            assert await table_rows(settings.database_url, SHADOW_SCHEMA, table) == \
                await table_rows(settings.database_url, READ_SCHEMA, table), table
        # More events while the rebuilt models are swapped in under the running projector.
        await rebuild(settings, swap=True)
        await publish(settings, run_events(JobName.ROUTE, "completed", at=T0 + timedelta(hours=1)))
        await live.catch_up(idle_polls=3)
    finally:
        await live.stop()
    async with read_models(settings) as db:
        await assert_models_equal_fold(db, reference(await read_log(settings), settings))
        assert await db.fetchval("SELECT count(*) FROM job_metrics WHERE job = 'route'") == 2
        schemas = {r["nspname"] for r in await db.fetch("SELECT nspname FROM pg_namespace")}
        assert READ_SCHEMA in schemas and SHADOW_SCHEMA not in schemas


async def test_a_duplicate_redelivered_in_a_later_batch_is_folded_once(
        settings: Settings) -> None:
    """Duplicates at, below and (for a lead the table already holds) beside the stored version
    are found, each in a batch of its own after the original was committed."""
    created, scored, qualified, *_ = happy_path()
    await publish(settings, [created, scored])
    await project(settings)
    for batch in ([scored, qualified], [created], [qualified, scored, created]):
        await publish(settings, batch)
        await project(settings)
    await project(settings)  # a duplicate parked by Postgres would be dead-lettered by now
    async with read_models(settings) as db:
        # Found by the lookup, not refused by the primary key and parked as a bad message.
        assert await db.fetchval("SELECT count(*) FROM dead_letters") == 0
        assert await db.fetchval("SELECT count(*) FROM lead_events") == 3
        assert await db.fetchval("SELECT version FROM leads") == 3
        assert await db.fetchval("SELECT count FROM pipeline_daily WHERE metric = $1",
                                 "entered:SCORED") == 1


async def test_retention_prunes_old_runs_and_events_but_keeps_metrics_and_leads(
        settings: Settings) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    old, recent = now - timedelta(days=40), now - timedelta(days=2)
    lead = created_event(lead_factory(email="kept@acme.com")).model_copy(
        update={"recorded_at": old, "occurred_at": old})
    await publish(settings, [lead, *run_events(JobName.SCORE, "completed", at=old, counts=(1, 1, 0)),
                             *run_events(JobName.SCORE, "failed", at=recent)])
    tick = TickEmitted(event_id=uuid.uuid4(), occurred_at=now, recorded_at=now,
                       tenant_id=ALL_TENANTS, job=JobName.RETENTION, scheduled_for=now,
                       source=TickSource.SCHEDULE)
    await publish(settings, [tick])
    await project(settings)
    await project(settings)  # the retention run's own job events, published by the projector
    async with read_models(settings) as db:
        assert await db.fetchval("SELECT count(*) FROM lead_events") == 0
        assert await db.fetchval("SELECT count(*) FROM leads") == 1
        jobs = {r["job"]: r for r in await db.fetch("SELECT * FROM job_runs")}
        assert set(jobs) == {"score", "retention"}
        assert jobs["score"]["status"] == "failed"  # only the recent run is left
        assert (jobs["retention"]["status"], jobs["retention"]["leads_processed"]) == ("completed", 2)
        totals = await db.fetchrow(
            "SELECT total_runs, successful_runs FROM job_metrics WHERE job='score' AND tenant_id='*'")
        assert tuple(totals) == (2, 1)


def synthetic_events(n_leads: int, seed: int) -> Iterator[list]:  # type: ignore[type-arg]
    """Batches of lead events (created, scored, some re-scored), job runs and duplicates."""
    rnd = random.Random(seed)
    card = ScoreCard(value=50, factors={"industry": 50}, model_version="m")
    for start in range(0, n_leads, 100):
        batch: list = []  # type: ignore[type-arg]
        for i in range(start, start + 100):
            created = created_event(lead_factory(email=f"k{seed}-{i}@acme.com"))
            scored = transition(LeadScored, created, at=T0, correlation_id=None, score=card)
            batch += [created, scored]
            if rnd.random() < 0.2:
                batch.append(scored)  # a redelivered duplicate
        outcome = rnd.choice(["completed", "completed", "failed", "skipped"])
        batch += run_events(JobName.SCORE, outcome, at=T0 + timedelta(minutes=start), counts=(5, 4, 1))
        rnd.shuffle(batch)
        yield batch


async def offsets_sum(settings: Settings) -> int:
    async with read_models(settings) as db:
        return await db.fetchval("SELECT coalesce(sum(next_offset), 0) FROM projector_offsets")


async def progressed(settings: Settings, before: int) -> None:
    """Return once the projector has committed a batch since ``before`` was read."""
    for _ in range(600):
        if await offsets_sum(settings) != before:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the projector made no progress in 30 s; see its log in tmp_path")


async def test_workers_exclude_a_projector_alone_and_any_split_that_would_fold_their_rows(
        settings: Settings) -> None:
    for batch in synthetic_events(200, seed=1):
        await publish(settings, batch)
    halves = [s for s in await plan_shares(settings, 2) if s is not None]
    assert len(halves) == 2
    first = Projector(settings, share=halves[0])
    await first.start(wait_for_lock=False)
    second = Projector(settings, share=halves[1])
    try:
        thirds = [s for s in await plan_shares(settings, 3) if s is not None]
        for other in (Projector(settings), Projector(settings, share=thirds[0])):
            with pytest.raises(InfrastructureError, match="another projector"):
                await other.start(wait_for_lock=False)
            await other.stop()
        await second.start(wait_for_lock=False)
        await first.catch_up(idle_polls=3)
        await second.catch_up(idle_polls=3)
    finally:
        await first.stop()
        await second.stop()
    async with read_models(settings) as db:
        await assert_models_equal_fold(db, reference(await read_log(settings), settings))
        rows = await db.fetch("SELECT id, lag, events_applied FROM projector_status ORDER BY id")
        progress = await db.fetchrow("SELECT * FROM projector_progress")
    assert [r["id"] for r in rows] == [1, 2] and all(r["events_applied"] > 0 for r in rows)
    assert (progress["lag"], progress["events_applied"]) == (
        0, sum(r["events_applied"] for r in rows))


async def test_kill_9_mid_batch_never_loses_or_doubles_a_projection(
        settings: Settings, tmp_path: Path) -> None:
    await kill_9_storm(settings, tmp_path, workers=1)


async def test_two_workers_killed_mid_batch_fold_exactly_the_log_and_report_as_one(
        settings: Settings, tmp_path: Path) -> None:
    """projector.workers = 2: the parent and each worker in turn killed with SIGKILL."""
    await kill_9_storm(settings, tmp_path, workers=2)
    async with read_models(settings) as db:
        assert await db.fetchval("SELECT count(*) FROM projector_status") == 2


def children(pid: int) -> list[int]:
    """The worker processes ``pid`` spawned (Linux; not multiprocessing's resource tracker)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()
            if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


async def kill_9_storm(settings: Settings, tmp_path: Path, *, workers: int) -> None:
    """Kill the projector 10 times at random moments while events flow; then it must have
    folded the log exactly once. With workers, the victims alternate between the parent (its
    workers follow it) and one worker (the parent ends the others and exits)."""
    config = tmp_path / "projector.toml"
    config.write_text(f'[topics]\nprefix = "{settings.prefix}"\npartitions = 3\n'
                      f'[projector]\nworkers = {workers}\n')
    env = {**os.environ, "DATABASE_URL": settings.database_url,
           "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "LEADFLOW_CONFIG": str(config), "LEADFLOW_LOG_LEVEL": "WARNING"}
    log = (tmp_path / "projector.log").open("ab")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "services.cli.main", "run", "projector"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)

    stop_flow = asyncio.Event()

    async def flow() -> None:
        seed = 0
        while not stop_flow.is_set():  # events keep flowing until the last kill
            seed += 1
            for batch in synthetic_events(500, seed=seed):
                await publish(settings, batch)
                await asyncio.sleep(0.05)

    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    rnd = random.Random(11)
    producer = asyncio.create_task(flow())
    proc = start()
    kills = 0
    try:
        while kills < 10:
            # Kill only once this incarnation is applying batches, at a random moment.
            await progressed(settings, await offsets_sum(settings))
            await asyncio.sleep(rnd.uniform(0.0, 0.3))
            spawned = children(proc.pid) if workers > 1 else []
            if len(spawned) >= workers and kills % 2:
                os.kill(rnd.choice(spawned), signal.SIGKILL)  # the parent ends the rest
                assert proc.wait(60) != 0
            else:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            kills += 1
            proc = start()
        stop_flow.set()
        await producer
        expected = reference(await read_log(settings), settings)

        async def caught_up() -> bool:
            return await offsets_sum(settings) == sum(expected.offsets.values())

        await eventually(caught_up, 120, "the projector caught up with the log", every=0.5)

        async def reports_caught_up() -> bool:
            async with read_models(settings) as db:
                return await db.fetchval("SELECT lag FROM projector_progress") == 0

        await eventually(reports_caught_up, 30, "the projector reported lag 0", every=0.5)
    finally:
        producer.cancel()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
    assert kills == 10
    async with read_models(settings) as db:
        await assert_models_equal_fold(db, expected)
        offsets = {(r["topic"], r["partition"]): r["next_offset"]
                   for r in await db.fetch("SELECT * FROM projector_offsets")}
        assert offsets == expected.offsets
