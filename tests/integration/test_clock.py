"""The clock on the real broker and Postgres: emission, restart, downtime catch-up, the real
loop, and two clocks where the active one is killed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from events import JobName, TickSource, utcnow
from events.ids import tick_id
from services.clock import store
from services.clock.schedule import due_ticks
from services.clock.service import Clock
from services.clock.ticks import scheduled_tick
from services.pipeline.settings import Settings
from services.runtime.bus import ensure_topics
from services.runtime.config import Catchup, JobConfig
from services.runtime.db import connect
from tests.harness import eventually
from tests.harness.clock import log_ticks, utc, with_jobs

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def active_clock(settings: Settings) -> AsyncIterator[Clock]:
    """A clock that holds the lock, driven by the test through ``step(now)``."""
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    clock = Clock(settings)
    await clock.start()
    try:
        assert await clock.activate()
        yield clock
    finally:
        await clock.stop()


async def test_ticks_are_emitted_recorded_and_a_restart_neither_repeats_nor_skips(
        settings: Settings) -> None:
    settings = with_jobs(settings, score=JobConfig(schedule="every 1m"))
    async with active_clock(settings) as clock:
        assert await clock.step(utc(2026, 1, 5, 10, 0)) == []  # first start: a baseline
        first = await clock.step(utc(2026, 1, 5, 10, 1, 0, 5000))
        second = await clock.step(utc(2026, 1, 5, 10, 2, 0, 5000))
    async with active_clock(settings) as clock:  # a new process: state comes from Postgres
        assert await clock.step(utc(2026, 1, 5, 10, 2, 30)) == []
        third = await clock.step(utc(2026, 1, 5, 10, 3, 0, 5000))

    expected = [utc(2026, 1, 5, 10, m) for m in (1, 2, 3)]
    assert [t.scheduled_for for t in first + second + third] == expected
    ticks = await log_ticks(settings, JobName.SCORE)
    assert [(t.scheduled_for, t.source) for t in ticks] == [(e, TickSource.SCHEDULE) for e in expected]
    assert [t.tick_id for t in ticks] == [tick_id("score", "*/*", e) for e in expected]
    assert all(t.requested_by == "clock:test" and t.tenant_id == "*" for t in ticks)
    async with connect(settings.database_url) as conn:
        recorded = await store.ticks_of(conn, "score")
        cursors = await store.load_cursors(conn)
    assert [r["tick_id"] for r in recorded] == [t.tick_id for t in ticks]
    assert cursors[("score", "*/*")] == expected[-1]


async def test_a_tick_published_just_before_a_crash_is_not_emitted_again(
        settings: Settings) -> None:
    settings = with_jobs(settings, score=JobConfig(schedule="every 1m"))
    async with active_clock(settings) as clock:
        await clock.step(utc(2026, 1, 5, 10, 0))
        # The clock published 10:01 and died before recording it.
        schedule = next(s for s in clock.schedules if s.job is JobName.SCORE)
        due = due_ticks(schedule, utc(2026, 1, 5, 10, 0), utc(2026, 1, 5, 10, 1, 0, 5000))
        await clock.publisher.publish([scheduled_tick(schedule, d, recorded_at=utcnow(),
                                                      requested_by="clock:crashed") for d in due])
    async with active_clock(settings) as clock:
        assert await clock.step(utc(2026, 1, 5, 10, 1, 0, 9000)) == []
        await clock.step(utc(2026, 1, 5, 10, 2, 0, 5000))
    ticks = await log_ticks(settings, JobName.SCORE)
    assert [(t.scheduled_for, t.requested_by) for t in ticks] == [
        (utc(2026, 1, 5, 10, 1), "clock:crashed"), (utc(2026, 1, 5, 10, 2), "clock:test")]


@pytest.mark.parametrize(("policy", "expected"), [
    (Catchup.ALL, [utc(2026, 1, 5, 11), utc(2026, 1, 5, 12)]),
    (Catchup.LATEST, [utc(2026, 1, 5, 12)]),
    (Catchup.NONE, []),
])
async def test_downtime_across_two_scheduled_times(settings: Settings, policy: Catchup,
                                                   expected: list[datetime]) -> None:
    settings = with_jobs(settings, score=JobConfig(schedule="0 * * * *", catchup=policy))
    async with active_clock(settings) as clock:
        await clock.step(utc(2026, 1, 5, 10, 30))
    # Stopped across 11:00 and 12:00; restarted at 12:30.
    async with active_clock(settings) as clock:
        await clock.step(utc(2026, 1, 5, 12, 30))
        await clock.step(utc(2026, 1, 5, 12, 45))  # asking again adds nothing
        await clock.step(utc(2026, 1, 5, 13, 0, 0, 5000))  # and the schedule goes on
    ticks = await log_ticks(settings, JobName.SCORE)
    assert [(t.scheduled_for, t.source) for t in ticks] == (
        [(e, TickSource.CATCHUP) for e in expected] + [(utc(2026, 1, 5, 13), TickSource.SCHEDULE)])


async def test_a_paused_job_gets_no_scheduled_ticks_until_resumed(settings: Settings) -> None:
    settings = with_jobs(settings, score=JobConfig(schedule="0 * * * *"))
    async with active_clock(settings) as clock:
        await clock.step(utc(2026, 1, 5, 10, 30))
        assert await store.pause(clock.pool, "score", "paused by test")
        assert await clock.step(utc(2026, 1, 5, 11, 0, 1)) == []  # withheld
        assert await store.resume(clock.pool, "score")
        resumed = await clock.step(utc(2026, 1, 5, 12, 0, 1))
    assert [t.scheduled_for for t in resumed] == [utc(2026, 1, 5, 12)]
    assert [t.scheduled_for for t in await log_ticks(settings, JobName.SCORE)] == [utc(2026, 1, 5, 12)]


async def test_the_real_loop_ticks_every_second(settings: Settings) -> None:
    settings = with_jobs(settings, score=JobConfig(schedule="every 1s"))
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    clock = Clock(settings)
    task = asyncio.create_task(clock.run())
    try:
        async def three_ticks() -> int:
            return len(await log_ticks(settings, JobName.SCORE)) >= 3

        await eventually(three_ticks, timeout=30)
    finally:
        clock.request_stop()
        await asyncio.wait_for(task, 30)
    ticks = await log_ticks(settings, JobName.SCORE)
    instants = [t.scheduled_for for t in ticks]
    assert all(b - a == timedelta(seconds=1) for a, b in pairwise(instants))
    assert {t.source for t in ticks} == {TickSource.SCHEDULE}
    assert all(t.scheduled_for.microsecond == 0 for t in ticks)


# --- two clocks, the active one killed ------------------------------------------------------


def start_clock(settings: Settings, config: Path, instance: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, DATABASE_URL=settings.database_url,
               KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
               LEADFLOW_CONFIG=str(config), LEADFLOW_INSTANCE_ID=instance)
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "services.cli.main", "run", "clock"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


async def test_a_standby_takes_over_from_a_killed_clock_without_gap_or_duplicate(
        settings: Settings, tmp_path: Path) -> None:
    config = tmp_path / "leadflow.toml"
    config.write_text(f'[topics]\nprefix = "{settings.prefix}"\npartitions = 3\n\n'
                      '[jobs.score]\nschedule = "every 1s"\ncatchup = "all"\n\n'
                      '[clock]\nstandby_poll = "200ms"\n')
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)

    def ticks_by(instance: str, at_least: int) -> Callable[[], object]:
        async def check() -> bool:
            ticks = await log_ticks(settings, JobName.SCORE)
            return sum(t.requested_by == f"clock:{instance}" for t in ticks) >= at_least
        return check

    a = start_clock(settings, config, "a", tmp_path / "clock-a.log")
    b: subprocess.Popen[bytes] | None = None
    try:
        await eventually(ticks_by("a", 2), timeout=60, every=0.3)
        b = start_clock(settings, config, "b", tmp_path / "clock-b.log")

        async def b_stands_by() -> bool:
            return "standing by" in (tmp_path / "clock-b.log").read_text()

        await eventually(b_stands_by, 60, "clock b standing by")  # while a keeps ticking
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        await eventually(ticks_by("b", 3), timeout=60, every=0.3)
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                with suppress(subprocess.TimeoutExpired):
                    proc.wait(20)
                if proc.poll() is None:
                    proc.kill()

    ticks = await log_ticks(settings, JobName.SCORE)
    instants = [t.scheduled_for for t in ticks]
    assert len({t.tick_id for t in ticks}) == len(ticks), "a tick was emitted twice"
    assert instants == sorted(instants)
    assert all(b - a == timedelta(seconds=1) for a, b in pairwise(instants)), \
        "a gap in the tick stream"
    by = [t.requested_by for t in ticks]
    assert by[0] == "clock:a" and by[-1] == "clock:b"
    assert by == sorted(by)  # a until it died, b from then on
    assert b is not None and b.returncode == 0  # the survivor stopped cleanly on SIGTERM
