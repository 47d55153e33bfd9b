"""`leadflow backfill` on the real broker and Postgres: order, dry run, refusals, --reprocess."""

from __future__ import annotations

import io
from collections import Counter
from datetime import datetime

import pytest
from rich.console import Console

from events import JobName, TickEmitted, TickSource
from services.cli.clock_commands import run_backfill
from services.clock.backfill import Reprocess
from services.clock.errors import BackfillRefused
from services.pipeline.settings import Settings
from services.runtime.config import JobConfig
from tests.harness import Ticker, project
from tests.harness.clock import ScriptedExecutor, log_ticks, serving, utc, with_jobs

HOURS = [utc(2026, 11, 1, h) for h in (1, 2, 3)]


async def backfill(settings: Settings, ticker: Ticker, reprocess: Reprocess, *,
                   dry_run: bool = False) -> list[tuple[datetime, str]]:
    """Backfill 01:00-04:00, wait for the runs; (scheduled_for, run status) per tick emitted."""
    entries = await run_backfill(
        settings, JobName.SCORE, "2026-11-01T01:00Z", "2026-11-01T04:00Z", reprocess=reprocess,
        dry_run=dry_run, force=False, max_leads=None, requested_by="cli:test",
        console=Console(file=io.StringIO(), width=200))
    assert [e.scheduled_for for e in entries] == HOURS
    ticks = [] if dry_run else [e.tick for e in entries if e.tick is not None]
    return [(t.scheduled_for, (await ticker.wait(t)).status) for t in ticks]


async def test_backfill_ticks_in_order_and_reprocess_decides_what_runs_again(
        settings: Settings) -> None:
    settings = with_jobs(settings, score=JobConfig(schedule="0 * * * *", retry_on_failure=False))
    attempts: Counter[datetime] = Counter()

    def fails_once_at_two(tick: TickEmitted) -> bool:
        attempts[tick.scheduled_for] += 1
        return tick.scheduled_for == HOURS[1] and attempts[tick.scheduled_for] == 1

    executor = ScriptedExecutor(failing=fails_once_at_two)
    async with serving(settings, executor), Ticker(settings) as ticker:
        assert await backfill(settings, ticker, Reprocess.NONE, dry_run=True) == []
        assert await log_ticks(settings) == []  # a dry run emits nothing

        first = await backfill(settings, ticker, Reprocess.NONE)
        await project(settings)
        again = await backfill(settings, ticker, Reprocess.NONE)  # every hour has a run now
        failed = await backfill(settings, ticker, Reprocess.FAILED)
        await project(settings)
        everything = await backfill(settings, ticker, Reprocess.ALL)

    assert first == [(HOURS[0], "completed"), (HOURS[1], "failed"), (HOURS[2], "completed")]
    assert again == []
    assert failed == [(HOURS[1], "completed")]
    assert [s for _, s in everything] == ["completed"] * 3
    ticks = await log_ticks(settings, JobName.SCORE)
    assert [t.scheduled_for for t in ticks] == [*HOURS, HOURS[1], *HOURS]  # in order, each time
    assert {t.source for t in ticks} == {TickSource.BACKFILL}
    assert {t.requested_by for t in ticks} == {"cli:test"}
    assert len({t.tick_id for t in ticks}) == len(ticks)  # every backfill tick is a run of its own


@pytest.mark.parametrize(("start", "end", "message"), [
    ("2026-11-01", "2999-01-01", "ends in the future"),
    ("2026-01-01", "2026-02-01", "more than 100 ticks"),
])
async def test_backfill_refuses_the_future_and_too_many_ticks(
        settings: Settings, start: str, end: str, message: str) -> None:
    settings = with_jobs(settings, score=JobConfig(schedule="0 * * * *"))
    with pytest.raises(BackfillRefused, match=message):
        await run_backfill(settings, JobName.SCORE, start, end, reprocess=Reprocess.NONE,
                           dry_run=True, force=False, max_leads=None, requested_by="cli:test",
                           console=Console(file=io.StringIO()))
