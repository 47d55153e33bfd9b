"""Stages honour ticks (disabled, overlap, old ticks, repeated ticks, timeout) and the clock
retries failed runs and pauses a job that keeps failing. Real broker, real Postgres."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from rich.console import Console

from events import JobName, TickEmitted, TickSource, Topic, stage_group, utcnow
from services.cli.ticks import publish_manual_tick
from services.clock import store
from services.clock.service import Clock
from services.clock.status import load_jobs_state, scheduler_status
from services.pipeline.settings import Settings
from services.runtime.bus import ensure_topics, publish_once
from services.runtime.config import ClockConfig, JobConfig, Overlap, ScopedSchedule, StageConfig
from services.runtime.db import connect
from services.runtime.partitions import topic_partitions
from tests.factories import created_event
from tests.harness import Ticker, eventually, make_config, project, read_models, running
from tests.harness.clock import ScriptedExecutor, serving, with_jobs


def scheduled(job: JobName = JobName.SCORE, **fields: object) -> TickEmitted:
    """A tick as the clock emits it (source=schedule), recorded now."""
    now = utcnow()
    values: dict[str, object] = dict(
        event_id=uuid.uuid4(), occurred_at=now, recorded_at=now, tenant_id="*", job=job,
        scheduled_for=now, source=TickSource.SCHEDULE, requested_by="test")
    values.update(fields)
    return TickEmitted(**values)  # type: ignore[arg-type]


# --- stages honour ticks ------------------------------------------------------------------------


async def test_a_scheduled_tick_during_a_manual_run_is_skipped(settings: Settings) -> None:
    settings = with_jobs(settings, score=JobConfig(overlap=Overlap.SKIP))
    gate = asyncio.Event()
    executor = ScriptedExecutor(gate=gate)
    manual = scheduled(source=TickSource.MANUAL)
    async with serving(settings, executor), Ticker(settings) as ticker:
        await ticker.publish(manual)
        await asyncio.wait_for(executor.started.wait(), 30)
        due = scheduled()  # the clock's tick, due while the manual run goes on
        await ticker.publish(due)
        gate.set()
        runs = [await ticker.wait(manual), await ticker.wait(due)]
    assert [(r.status, r.reason) for r in runs] == [("completed", None), ("skipped", "overlap")]
    assert [t.tick_id for t in executor.calls] == [manual.tick_id]


async def test_a_disabled_job_skips_and_an_old_tick_still_runs(settings: Settings) -> None:
    settings = with_jobs(settings, score=JobConfig(enabled=False), qualify=JobConfig(
        timeout_seconds=5, scopes=(ScopedSchedule(tenant="off", enabled=False),)))
    disabled, enabled = ScriptedExecutor(), ScriptedExecutor()
    old = scheduled(JobName.QUALIFY, scheduled_for=utcnow() - timedelta(days=2),
                    source=TickSource.CATCHUP)
    async with serving(settings, disabled, qualify=enabled), Ticker(settings) as ticker:
        skipped = await ticker.run(JobName.SCORE)
        await ticker.publish(old)
        ran = await ticker.wait(old)
        scope_off = await ticker.run(JobName.QUALIFY, tenant_id="off")
    assert (skipped.status, skipped.reason, disabled.calls) == ("skipped", "disabled", [])
    assert (scope_off.status, scope_off.reason) == ("skipped", "disabled")
    assert ran.status == "completed"  # two days older than its timeout horizon, still processed
    assert [t.tick_id for t in enabled.calls] == [old.tick_id]


async def test_the_same_tick_twice_is_one_run(settings: Settings) -> None:
    executor = ScriptedExecutor()
    tick = scheduled()
    async with serving(settings, executor), Ticker(settings) as ticker:
        await ticker.publish(tick)
        await ticker.publish(tick)  # a clock that crashed between publishing and recording
        await ticker.wait(tick)
        last = await ticker.run(JobName.SCORE)  # a later tick: the repeat was handled before it
    assert last.status == "completed"
    assert [t.tick_id for t in executor.calls] == [tick.tick_id, last.run_id]
    await project(settings)
    async with read_models(settings) as db:
        assert await db.fetchval("SELECT count(*) FROM job_runs") == 2


async def test_overlap_policies(settings: Settings) -> None:
    policies = {JobName.SCORE: Overlap.SKIP, JobName.QUALIFY: Overlap.BUFFER_ONE,
                JobName.ROUTE: Overlap.ALLOW}
    settings = with_jobs(settings, **{j.value: JobConfig(overlap=p) for j, p in policies.items()})
    gate = asyncio.Event()
    executors = {job: ScriptedExecutor(gate=gate) for job in policies}
    firsts = {job: scheduled(job) for job in policies}
    async with serving(settings, executors[JobName.SCORE], qualify=executors[JobName.QUALIFY],
                       route=executors[JobName.ROUTE]), Ticker(settings) as ticker:
        for tick in firsts.values():
            await ticker.publish(tick)
        await asyncio.wait_for(asyncio.gather(*(e.started.wait() for e in executors.values())), 30)
        later = {job: [scheduled(job), scheduled(job)] for job in policies}  # due meanwhile
        for ticks in later.values():
            for tick in ticks:
                await ticker.publish(tick)
        gate.set()  # the first runs end
        # score skips both later ticks as one streak, reported under its first tick
        reported = {job: (firsts[job], *later[job][:1 if job is JobName.SCORE else 2])
                    for job in policies}
        runs = {job: [(await ticker.wait(t)) for t in ticks] for job, ticks in reported.items()}
        manual = await ticker.run(JobName.SCORE)  # explicit requests are never skipped
    assert {job.value: [r.status for r in rs] for job, rs in runs.items()} == {
        "score": ["completed", "skipped"],  # skip
        "qualify": ["completed", "completed", "skipped"],  # buffer_one
        "route": ["completed", "completed", "completed"],  # allow
    }
    assert {r.reason for rs in runs.values() for r in rs if r.status == "skipped"} == {"overlap"}
    assert [r.skipped_ticks for r in runs[JobName.SCORE]] == [0, 2]
    assert manual.status == "completed"
    await project(settings)
    async with read_models(settings) as db:
        score = await db.fetch("SELECT status, skipped_ticks FROM job_runs WHERE job = 'score'")
        skipped = await db.fetchval(
            "SELECT skipped_runs FROM job_metrics WHERE job = 'score' AND tenant_id = '*'")
    assert sorted((r["status"], r["skipped_ticks"]) for r in score) == [
        ("completed", 0), ("completed", 0), ("skipped", 2)]  # one row for the streak
    assert skipped == 2  # each tick of it counts as a run not made


async def test_a_run_stops_at_its_timeout_and_commits_what_it_finished(settings: Settings) -> None:
    # One lead per batch (a publish, a commit and a budget claim each): far more than 1.5s of
    # work, and the first batches surely fit in it.
    leads = [created_event() for _ in range(3000)]
    quick = make_config(settings.prefix, stage=StageConfig(batch_size=1),
                        jobs={JobName.SCORE: JobConfig(timeout_seconds=1.5, max_leads_per_run=5000,
                                                       retry_on_failure=False)})
    settings = settings.using(quick)
    await publish_once(settings.kafka_bootstrap_servers, settings.pipeline.topics, leads)
    async with running(settings, JobName.SCORE), Ticker(settings) as ticker:
        run = await ticker.run(JobName.SCORE)
    assert (run.status, run.reason) == ("failed", "timeout")
    assert 0 < run.leads_processed < len(leads)
    # What it finished is committed (the group resumes after it) and published, once.
    assert await committed(settings, stage_group(JobName.SCORE, settings.prefix),
                           Topic.LEADS_NEW) == run.leads_processed
    await project(settings)
    async with read_models(settings) as db:
        assert await db.fetchval("SELECT count(*) FROM leads WHERE status = 'SCORED'") \
            == run.leads_processed
        assert await db.fetchval("SELECT count(*) FROM lead_events WHERE type = 'lead.scored'") \
            == run.leads_processed


async def committed(settings: Settings, group: str, topic: Topic) -> int:
    """Sum of the group's committed offsets on ``topic``."""
    name = topic.physical(settings.prefix)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(name, p) for p in (await topic_partitions(consumer, [name]))[name]]
        return sum([(await consumer.committed(tp)) or 0 for tp in tps])
    finally:
        await consumer.stop()


# --- retries and auto-pause (the clock follows jobs.events) -----------------------------------


@asynccontextmanager
async def clock_running(settings: Settings) -> AsyncIterator[Clock]:
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    clock = Clock(settings)
    task = asyncio.create_task(clock.run())
    try:
        await eventually(lambda: _true(clock.active), timeout=30)
        yield clock
    finally:
        clock.request_stop()
        await asyncio.wait_for(task, 30)


async def _true(value: bool) -> bool:
    return value


async def test_failed_runs_are_retried_with_backoff_then_the_job_pauses_until_a_run_succeeds(
        settings: Settings) -> None:
    settings = with_jobs(settings, ClockConfig(), score=JobConfig(
        schedule="0 0 1 1 *", retry_on_failure=True, max_retries=2, retry_backoff_seconds=0.2,
        pause_after_failures=3))
    broken = {"yes": True}
    executor = ScriptedExecutor(failing=lambda tick: broken["yes"])
    async with serving(settings, executor), clock_running(settings), Ticker(settings) as ticker:
        first = await ticker.run(JobName.SCORE)

        async def paused() -> bool:
            async with connect(settings.database_url) as conn:
                return "score" in await store.paused_jobs(conn)

        await eventually(paused, timeout=60)
        # Paused, yet a hand tick runs; its success resumes the schedule.
        broken["yes"] = False
        manual = await ticker.run(JobName.SCORE)

        async def resumed() -> bool:
            return not await paused()

        await eventually(resumed, timeout=30)

    assert first.status == "failed"
    assert manual.status == "completed"
    retries = [t for t in executor.calls if t.source is TickSource.RETRY]
    assert [(t.retry_of, t.attempt) for t in retries] == [(first.run_id, 1), (first.run_id, 2)]
    assert all(t.scheduled_for == first.scheduled_for for t in retries)
    await project(settings)
    async with read_models(settings) as db:
        runs = await db.fetch("SELECT run_id, source, status, retry_of, attempt, started_at "
                              "FROM job_runs ORDER BY started_at")
    assert [(r["source"], r["status"], r["retry_of"], r["attempt"]) for r in runs] == [
        ("manual", "failed", None, 0), ("retry", "failed", first.run_id, 1),
        ("retry", "failed", first.run_id, 2), ("manual", "completed", None, 0)]
    async with connect(settings.database_url) as conn:
        rows = await store.retries_of(conn, "score")
        status = scheduler_status(settings.pipeline, now=utcnow(),
                                  jobs_state=await load_jobs_state(conn))
        ended = {r["run_id"]: r["completed_at"] for r in await conn.fetch(
            "SELECT run_id, completed_at FROM leadflow_read.job_runs")}
    assert [(r.attempt, r.status) for r in rows] == [(1, "emitted"), (2, "emitted")]
    # Exponential backoff from each failure: 0.2s, then 0.4s; never emitted before it is due.
    assert [r.due_at - ended[r.failed_run] for r in rows] == [timedelta(seconds=0.2),
                                                              timedelta(seconds=0.4)]
    assert all(run["started_at"] >= row.due_at for run, row in zip(runs[1:3], rows, strict=True))
    assert status["jobs"]["score"]["paused"] is False
    assert status["jobs"]["score"]["last_tick"] is not None


async def test_a_retry_owed_when_the_clock_stops_is_emitted_after_restart(
        settings: Settings) -> None:
    settings = with_jobs(settings, score=JobConfig(
        schedule="0 0 1 1 *", max_retries=1, retry_backoff_seconds=1.5))
    executor = ScriptedExecutor(failing=lambda tick: tick.source is not TickSource.RETRY)
    async with serving(settings, executor), Ticker(settings) as ticker:
        async with clock_running(settings):
            failed = await ticker.run(JobName.SCORE)

            async def owed() -> bool:
                async with connect(settings.database_url) as conn:
                    return bool(await store.retries_of(conn, "score"))

            await eventually(owed, timeout=30)
        # The clock stopped before the retry was due; another one starts and emits it.
        async with clock_running(settings):
            async def retried() -> bool:
                return any(t.source is TickSource.RETRY for t in executor.calls)

            await eventually(retried, timeout=30)
        retry = next(t for t in executor.calls if t.source is TickSource.RETRY)
        run = await ticker.wait(retry)
    assert failed.status == "failed"
    assert (run.status, retry.retry_of, retry.attempt) == ("completed", failed.run_id, 1)
    assert sum(t.source is TickSource.RETRY for t in executor.calls) == 1


async def test_leadflow_tick_wait_reports_the_runs_result(settings: Settings) -> None:
    executor = ScriptedExecutor(failing=lambda tick: tick.tenant_id == "acme")
    out = Console(file=io.StringIO(), width=200)
    async with serving(settings, executor):
        failed = await publish_manual_tick(
            settings, JobName.SCORE, requested_by="cli:ada@host", max_leads=7, tenant="acme",
            campaign="q4", wait=True, timeout=60, console=out)
        succeeded = await publish_manual_tick(
            settings, JobName.SCORE, requested_by="cli:ada@host", max_leads=None, tenant=None,
            campaign=None, wait=True, timeout=60, console=out)
    assert (failed, succeeded) == (True, False)  # True: `leadflow tick --wait` exits 1
    first = executor.calls[0]
    assert (first.source, first.requested_by, first.max_leads, first.tenant_id,
            first.campaign_id) == (TickSource.MANUAL, "cli:ada@host", 7, "acme", "q4")
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert "failed" in text and "scripted failure" in text and "completed" in text
