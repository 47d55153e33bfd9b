"""A run part whose instance died mid-run (kill -9, no heartbeat since) is reported failed
("lost") by the active clock, so no run stays "running" and `tick --wait` ends; so are the
partitions of a run that an instance dying after the tick never ran. Real broker and
Postgres."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from events import JobCompleted, JobName, JobStarted, RunCounts, utcnow
from events.ids import job_event_id
from services.clock.manual import manual_tick
from services.clock.service import Clock
from services.pipeline.settings import Settings
from services.runtime.bus import ensure_topics, publish_once
from services.runtime.db import connect
from services.runtime.runs import run_info
from tests.harness import project, read_models


async def reap(settings: Settings) -> None:
    """Fold the log, let an active clock take one step (it reaps), fold what it published."""
    await project(settings)
    clock = Clock(settings)
    await clock.start()
    try:
        assert await clock.activate()
        await clock.step(utcnow())
    finally:
        await clock.stop()
    await project(settings)


async def test_the_clock_reports_a_part_whose_instance_died_as_lost(settings: Settings) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    tick = manual_tick(JobName.SCORE, requested_by="test")
    started = utcnow() - timedelta(minutes=5)
    common = dict(occurred_at=started, recorded_at=started, tenant_id="*",
                  correlation_id=tick.tick_id, causation_id=tick.tick_id, run_id=tick.tick_id,
                  job=JobName.SCORE, run=run_info(tick))
    await publish_once(settings.kafka_bootstrap_servers, settings.pipeline.topics, [
        JobStarted(event_id=job_event_id(tick.tick_id, "ghost", "started"), part="ghost",
                   started_at=started, **common),  # type: ignore[arg-type]
        JobStarted(event_id=job_event_id(tick.tick_id, "alive", "started"), part="alive",
                   started_at=started, **common),  # type: ignore[arg-type]
    ])
    async with connect(settings.database_url) as conn:  # ghost died 5 minutes ago; alive beats
        await conn.execute(
            "INSERT INTO stage_instances (job, instance_id, pid, ready_at, last_seen) VALUES "
            "('score', 'ghost', 1, now() - interval '6 minutes', now() - interval '5 minutes'),"
            "('score', 'alive', 2, now() - interval '6 minutes', now())")
    await reap(settings)
    async with read_models(settings) as db:
        parts = {r["part"]: (r["status"], r["reason"]) for r in await db.fetch(
            "SELECT part, status, reason FROM job_run_parts WHERE run_id = $1", tick.tick_id)}
        error = await db.fetchval("SELECT error FROM job_run_parts WHERE part = 'ghost'")
    assert parts == {"ghost": ("failed", "lost"), "alive": ("running", None)}
    assert "instance ghost stopped reporting during the run" in error


async def test_the_clock_reports_partitions_nobody_ran_once_every_part_has_long_ended(
        settings: Settings) -> None:
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    old, recent = manual_tick(JobName.SCORE, requested_by="test"), \
        manual_tick(JobName.SCORE, requested_by="test")
    now = utcnow()

    def completed(tick_id: UUID, part: str, partitions: tuple[int, ...], at: datetime
                  ) -> JobCompleted:
        tick = old if tick_id == old.tick_id else recent
        return JobCompleted(
            event_id=job_event_id(tick_id, part, "completed"), occurred_at=at, recorded_at=at,
            tenant_id="*", correlation_id=tick_id, causation_id=tick_id, run_id=tick_id,
            job=JobName.SCORE, run=run_info(tick), part=part, started_at=at, completed_at=at,
            duration_seconds=0, counts=RunCounts(leads_processed=4, leads_succeeded=4),
            partitions=partitions, partitions_total=3)

    # The instance that owned partitions 1 and 2 at the tick died before running it.
    await publish_once(settings.kafka_bootstrap_servers, settings.pipeline.topics, [
        completed(old.tick_id, "survivor", (0,), now - timedelta(minutes=5)),
        completed(recent.tick_id, "survivor", (0,), now),  # others may still be on their way
    ])
    await reap(settings)
    async with read_models(settings) as db:
        runs = {r["run_id"]: r for r in await db.fetch(
            "SELECT run_id, status, reason, partitions_covered, leads_processed FROM job_runs")}
        part = await db.fetchrow("SELECT * FROM job_run_parts WHERE part = 'unreported'")
    assert (runs[old.tick_id]["status"], runs[old.tick_id]["reason"]) == ("failed", "lost")
    assert (runs[old.tick_id]["partitions_covered"], runs[old.tick_id]["leads_processed"]) == (3, 4)
    assert runs[recent.tick_id]["status"] == "running"  # its other parts may still report
    assert (part["run_id"], list(part["partitions"])) == (old.tick_id, [1, 2])
    assert "partitions 1, 2 were not run" in part["error"]
