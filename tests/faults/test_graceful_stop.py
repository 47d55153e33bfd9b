"""SIGTERM mid-run: the service ends the run after its batch in hand (or abandons it, uncommitted,
after shutdown_grace), reports job.failed "stopped", exits 0; a restart finishes the work with
nothing lost and nothing done twice. Real processes, real broker and Postgres."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from pathlib import Path

from events import JobName, TickEmitted
from services.cli.stack import Stack
from services.clock.manual import manual_tick
from services.runtime.budget import RunBudget
from services.runtime.bus import ensure_topics
from services.runtime.config import JobConfig, StageConfig
from services.runtime.runs import RunContext, RunResult
from services.runtime.service import JobService
from services.runtime.settings import Settings
from tests.conftest import make_config
from tests.harness import (
    Ticker,
    committed,
    project,
    publish_leads,
    read_models,
    wait_for_group,
    wait_for_progress,
    wait_for_started,
)


async def test_sigterm_mid_run_stops_after_the_batch_reports_stopped_and_exits_0(
        settings: Settings, tmp_path: Path) -> None:
    total = 3000
    settings = settings.using(make_config(settings.prefix, stage=StageConfig(batch_size=5),
                                          jobs={JobName.SCORE: JobConfig(max_leads_per_run=total)}))
    config = tmp_path / "stop.toml"
    config.write_text(f'[topics]\nprefix = "{settings.prefix}"\npartitions = 3\n'
                      f'[stage]\nbatch_size = 5\nshutdown_grace = "5s"\n'
                      f'[jobs.score]\nmax_leads_per_run = {total}\n')
    leads = await publish_leads(settings, total, "stop")
    stack = Stack(config=config, services=(), workdir=tmp_path, database_url=settings.database_url,
                  bootstrap=settings.kafka_bootstrap_servers)
    stack.log_dir.mkdir(parents=True, exist_ok=True)
    proc = stack.spawn("score", instance="s1")
    try:
        await wait_for_group(settings, {proc.pid})
        async with Ticker(settings) as ticker:
            tick = manual_tick(JobName.SCORE, requested_by="test")
            started = asyncio.create_task(wait_for_started(settings, tick.tick_id, "s1"))
            await asyncio.sleep(0.5)  # the watcher reads before the tick goes out
            before = await committed(settings)
            await ticker.publish(tick)
            await asyncio.wait_for(started, 60)
            await asyncio.wait_for(wait_for_progress(settings, [0, 1, 2], before), 60)
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 30)
            assert code == 0, stack.tail("score-s1")
            stopped = await ticker.wait(tick, timeout=30)
            assert (stopped.status, stopped.reason) == ("failed", "stopped"), stopped
            assert 0 < stopped.leads_processed < total
            log = (stack.log_dir / "score-s1.log").read_text()
            assert "Traceback" not in log and "pool is closing" not in log, log[-3000:]

            proc = stack.spawn("score", instance="s1")  # a restart finishes the work
            await wait_for_group(settings, {proc.pid})
            rest = await ticker.run(JobName.SCORE, timeout=120)
            assert rest.status == "completed"
            assert stopped.leads_processed + rest.leads_processed >= total
    finally:
        stack.stop()
    await project(settings)
    async with read_models(settings) as db:
        scored = await db.fetch("SELECT lead_id, count(*) AS n FROM lead_events "
                                "WHERE type = 'lead.scored' GROUP BY lead_id")
    assert {r["lead_id"] for r in scored} == leads  # nothing lost
    assert {r["n"] for r in scored} == {1}          # nothing scored twice


class Stubborn:
    """An executor whose run ignores the stop request (stuck in one batch)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def execute(self, ctx: RunContext, budget: RunBudget, deadline: float) -> RunResult:
        self.started.set()
        await asyncio.Event().wait()
        return RunResult()


async def test_a_run_stuck_past_the_grace_is_abandoned_and_reported_stopped(
        settings: Settings) -> None:
    settings = settings.using(make_config(
        settings.prefix, stage=StageConfig(batch_size=5, shutdown_grace=timedelta(seconds=1))))
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    executor = Stubborn()
    service = JobService(JobName.SCORE, settings, lambda _: executor)
    await service.start()
    async with Ticker(settings) as ticker:
        await asyncio.wait_for(service.wait_ready(), 60)
        tick: TickEmitted = manual_tick(JobName.SCORE, requested_by="test")
        await ticker.publish(tick)
        await asyncio.wait_for(executor.started.wait(), 30)
        await asyncio.wait_for(service.stop(), 20)  # grace 1 s, then abandoned
        run = await ticker.wait(tick, timeout=30)
    assert (run.status, run.reason) == ("failed", "stopped")
    assert "not committed" in (run.error or "")
