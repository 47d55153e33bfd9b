"""One harvester per deployment: its session lock, on a connection of its own, keeps a second
harvester idle while the first runs and goes when the run ends."""

from __future__ import annotations

from pathlib import Path

from events import JobName
from services.pipeline.settings import Settings
from services.runtime.locks import AdvisoryLock, advisory_key
from tests.factories import source_rows, write_csv
from tests.harness import Ticker, pipeline_settings, read_models, running


async def test_one_harvester_at_a_time_and_the_lock_goes_with_its_run(
        settings: Settings, tmp_path: Path) -> None:
    # Two harvesters would read the same files; the second does nothing while the first holds
    # the lock, and a finished run leaves no lock behind on any connection.
    settings = pipeline_settings(settings, write_csv(tmp_path / "a.csv", source_rows(4)))
    held = AdvisoryLock(settings.database_url, advisory_key("harvest", settings.prefix))
    async with running(settings, JobName.HARVEST), Ticker(settings) as ticker:
        assert await held.try_acquire()
        try:
            blocked = await ticker.run(JobName.HARVEST)
        finally:
            await held.release()
        run = await ticker.run(JobName.HARVEST)
        async with read_models(settings) as db:
            locks = await db.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1",
                advisory_key("harvest", settings.prefix))
    assert (blocked.status, blocked.leads_processed) == ("completed", 0)
    assert (run.status, run.leads_succeeded) == ("completed", 4)
    assert locks == 0
