"""A run interrupted after publishing but before committing, then rerun: no duplicate sends, no
duplicate events in the read model (the outputs repeat with the same ids and are dropped)."""

from __future__ import annotations

from pathlib import Path

import pytest

from events import JobName, Topic, decode
from services.runtime.drain import TopicDrainer
from services.runtime.errors import InfrastructureError
from services.runtime.settings import Settings
from tests.factories import source_rows, write_csv
from tests.harness import STAGES, Ticker, pipeline_settings, project, read_models, read_topic, running


@pytest.mark.parametrize("job", [JobName.SCORE, JobName.CONTACT])
async def test_rerun_after_a_crash_between_publish_and_commit_duplicates_nothing(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, job: JobName) -> None:
    settings = pipeline_settings(settings, write_csv(tmp_path / "l.csv", source_rows(120)), cap=500)
    real_commit = TopicDrainer._commit
    crashes = {"left": 1}

    async def crash_once(self: TopicDrainer, batch: list) -> None:  # type: ignore[type-arg]
        if self.job is job and crashes["left"]:
            crashes["left"] -= 1
            raise InfrastructureError("simulated crash after publish, before commit")
        await real_commit(self, batch)

    monkeypatch.setattr(TopicDrainer, "_commit", crash_once)
    async with running(settings, *STAGES), Ticker(settings) as ticker:
        for stage in STAGES:
            run = await ticker.run(stage)
            if stage is job:
                assert (run.status, run.reason) == ("failed", "error")
                assert "simulated crash" in (run.error or "")
                run = await ticker.run(stage)
            assert run.status == "completed", (stage, run)
    await project(settings)

    output = {JobName.SCORE: Topic.LEADS_SCORED, JobName.CONTACT: Topic.LEADS_CONTACTED}[job]
    published = [decode(v) for v in await read_topic(settings, output)]
    distinct = {e.event_id for e in published}
    if job is JobName.CONTACT:
        # The ledger knew those sends were already reported: no second event at all.
        assert len(published) == len(distinct)
    else:
        assert len(published) > len(distinct), "the crashed batch's outputs were published twice"
    async with read_models(settings) as db:
        events = await db.fetchval("SELECT count(*) FROM lead_events WHERE type = $1",
                                   published[0].type)
        assert events == len(distinct)
        assert await db.fetchval("SELECT count(DISTINCT event_id) FROM lead_events") == \
            await db.fetchval("SELECT count(*) FROM lead_events")
        contacted = await db.fetchval("SELECT count(*) FROM leads WHERE status = 'CONTACTED'")
        assert contacted > 0
        assert await db.fetchval("SELECT count(*) FROM contact_ledger") == contacted
        assert await db.fetchval(
            "SELECT count(*) FROM contact_ledger WHERE status <> 'sent' OR event_published_at IS NULL"
        ) == 0
