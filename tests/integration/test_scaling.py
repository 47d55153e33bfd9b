"""Scaling a stage: three score instances (real processes) split 12 partitions and one run's cap,
an instance killed mid-run hands its partitions over and nothing is lost; a small cap reaches
every partition; a second process with the same instance id stops at once; backlog shows up in
the runs, the dashboard payload and `leadflow status`."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from events import JobName, utcnow
from services.cli.main import app
from services.cli.services import build_job_service
from services.clock.manual import manual_tick
from services.dashboard import snapshot
from services.pipeline.settings import Settings
from services.pipeline.stack import Stack
from services.runtime.config import JobConfig, StageConfig, TopicsConfig
from services.runtime.db import connect
from services.runtime.instances import DuplicateInstance
from tests.harness import (
    Ticker,
    committed,
    job_starts,
    make_config,
    project,
    publish_leads,
    read_models,
    running,
    wait_for_group,
    wait_for_progress,
)

PARTITIONS = 12


def twelve_partitions(settings: Settings, *, cap: int, batch_size: int) -> Settings:
    return settings.using(make_config(
        settings.prefix, topics=TopicsConfig(prefix=settings.prefix, partitions=PARTITIONS),
        stage=StageConfig(batch_size=batch_size),
        jobs={JobName.SCORE: JobConfig(max_leads_per_run=cap)}))


async def test_a_small_cap_is_spread_over_every_partition(settings: Settings) -> None:
    settings = twelve_partitions(settings, cap=24, batch_size=500)
    await publish_leads(settings, 360, "small")
    async with running(settings, JobName.SCORE), Ticker(settings) as ticker:
        first = await ticker.run(JobName.SCORE)
        assert await committed(settings) == dict.fromkeys(range(PARTITIONS), 2)
        second = await ticker.run(JobName.SCORE)
        assert await committed(settings) == dict.fromkeys(range(PARTITIONS), 4)
    assert (first.leads_processed, second.leads_processed) == (24, 24)
    assert (first.backlog, second.backlog) == (360 - 24, 360 - 48)


async def test_a_second_process_with_the_same_instance_id_stops_at_once(settings: Settings) -> None:
    async with running(settings, JobName.SCORE):
        twin = build_job_service("score", settings)
        with pytest.raises(DuplicateInstance, match="set LEADFLOW_INSTANCE_ID"):
            await twin.start()
        with contextlib.suppress(Exception):
            await twin.stop()
        other = build_job_service("score", settings.model_copy(update={"instance_id": "test-2"}))
        await other.start()  # a distinct id joins the same group
        await asyncio.wait_for(other.wait_ready(), 60)
        await other.stop()


async def owned_by(settings: Settings, pid: int) -> list[int]:
    async with connect(settings.database_url) as conn:
        return list(await conn.fetchval(
            "SELECT partitions FROM stage_instances WHERE job = 'score' AND pid = $1", pid))


async def test_three_instances_split_the_partitions_and_the_cap_and_survive_a_kill_9(
        settings: Settings, tmp_path: Path) -> None:
    cap, total = 600, 2400
    settings = twelve_partitions(settings, cap=cap, batch_size=5)
    config = tmp_path / "scale.toml"
    config.write_text(f'[topics]\nprefix = "{settings.prefix}"\npartitions = {PARTITIONS}\n'
                      f'[stage]\nbatch_size = 5\n[jobs.score]\nmax_leads_per_run = {cap}\n')
    leads = await publish_leads(settings, total, "lead")
    stack = Stack(config=config, services=(), workdir=tmp_path, database_url=settings.database_url,
                  bootstrap=settings.kafka_bootstrap_servers,
                  extra_env={"LEADFLOW_LOG_LEVEL": "WARNING"})
    stack.log_dir.mkdir(parents=True, exist_ok=True)
    procs = {name: stack.spawn("score", instance=name) for name in ("s1", "s2", "s3")}
    runs = []
    try:
        await wait_for_group(settings, {p.pid for p in procs.values()})
        async with Ticker(settings) as ticker:
            # One tick reaches all three; each drains its share and the parts fold into one run.
            first = await ticker.run(JobName.SCORE, timeout=120)
            parts = ticker.follower.parts[first.run_id]
            assert (first.status, first.parts, first.partitions_covered) == ("completed", 3, 12)
            assert first.leads_processed == cap
            shares = {name: p.leads_processed for name, p in parts.items()}
            assert all(shares.values()), shares  # nobody starved, even one late to read the tick
            assert first.backlog == total - cap
            runs.append(first)

            # Kill -9 one instance in the middle of its part of the next run: once it has
            # committed some of its share, well before all of it.
            mine = await owned_by(settings, procs["s2"].pid)
            before = await committed(settings)
            tick = manual_tick(JobName.SCORE, requested_by="test")
            async with job_starts(settings) as started:
                await ticker.publish(tick)
                await asyncio.wait_for(started(tick.tick_id, "s2"), 60)
            done = await wait_for_progress(settings, mine, before)
            procs["s2"].kill()
            procs["s2"].wait()
            assert 0 < done < cap // 3, done
            with contextlib.suppress(Exception):  # the run stays open: s2 never reports
                await ticker.wait(tick, timeout=8)
            killed = ticker.follower.runs[tick.tick_id]
            assert ticker.follower.parts[tick.tick_id]["s2"].status == "running"
            assert killed.leads_processed <= cap

            # After the session timeout the other two own all twelve partitions.
            await wait_for_group(settings, {procs["s1"].pid, procs["s3"].pid})
            while True:
                run = await ticker.run(JobName.SCORE, timeout=120)
                runs.append(run)
                assert (run.status, run.parts, run.partitions_covered) == ("completed", 2, 12)
                if run.leads_processed == 0:
                    break
    finally:
        stack.stop()
    assert all(r.leads_processed <= cap for r in runs)
    assert runs[-1].backlog == 0

    await project(settings)
    async with read_models(settings) as db:
        scored = await db.fetch("SELECT lead_id, count(*) AS n FROM lead_events "
                                "WHERE type = 'lead.scored' GROUP BY lead_id")
        assert {r["lead_id"] for r in scored} == leads  # nothing lost
        assert {r["n"] for r in scored} == {1}          # each scored exactly once
        assert await db.fetchval("SELECT count(*) FROM leads WHERE status = 'SCORED'") == total
        payload = await snapshot.dashboard(db, settings.pipeline, utcnow())
        assert payload["backlog"]["score"] == 0

    env = {"DATABASE_URL": settings.database_url, "KAFKA_BOOTSTRAP_SERVERS":
           settings.kafka_bootstrap_servers, "LEADFLOW_CONFIG": str(config)}
    result = await asyncio.to_thread(CliRunner().invoke, app, ["status"], env=env)
    assert result.exit_code == 0, result.output
    [score_row] = [line for line in result.output.splitlines() if line.startswith("│ score")]
    cells = [c.strip() for c in score_row.strip("│").split("│")]
    assert cells[3] == "0"  # backlog
    assert cells[6] == "1"  # suggested: nothing waiting
