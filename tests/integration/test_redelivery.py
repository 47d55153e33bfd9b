"""A run interrupted after publishing but before committing, then rerun: no duplicate sends, no
duplicate events in the read model (the outputs repeat with the same ids and are dropped), and
no lead lost: the crash comes while the next batch is already decided (batches overlap)."""

from __future__ import annotations

from pathlib import Path

import pytest

from events import JobName, Topic, decode
from services.pipeline.settings import Settings
from services.runtime.drain import TopicDrainer
from services.runtime.errors import InfrastructureError
from tests.factories import source_rows, write_csv
from tests.harness import (
    STAGES,
    Ticker,
    pipeline_settings,
    project,
    publish,
    read_models,
    read_topic,
    running,
)


def with_batch_size(settings: Settings, size: int) -> Settings:
    config = settings.pipeline
    return settings.using(config.model_copy(update={
        "stage": config.stage.model_copy(update={"batch_size": size})}))


@pytest.mark.parametrize("job", [JobName.SCORE, JobName.CONTACT])
async def test_rerun_after_a_crash_between_publish_and_commit_duplicates_nothing(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, job: JobName) -> None:
    settings = pipeline_settings(settings, write_csv(tmp_path / "l.csv", source_rows(120)), cap=500)
    settings = with_batch_size(settings, 20)
    real_commit = TopicDrainer._commit
    commits = {"seen": 0}

    async def crash_second(self: TopicDrainer, batch: list) -> None:  # type: ignore[type-arg]
        if self.job is job:
            commits["seen"] += 1
            if commits["seen"] == 2:  # the first batch is committed, the third decided
                raise InfrastructureError("simulated crash after publish, before commit")
        await real_commit(self, batch)

    monkeypatch.setattr(TopicDrainer, "_commit", crash_second)
    async with running(settings, *STAGES), Ticker(settings) as ticker:
        for stage in STAGES:
            run = await ticker.run(stage)
            if stage is job:
                assert (run.status, run.reason) == ("failed", "error")
                assert "simulated crash" in (run.error or "")
                run = await ticker.run(stage)
            assert run.status == "completed", (stage, run)
    await project(settings)

    source, output = {JobName.SCORE: (Topic.LEADS_NEW, Topic.LEADS_SCORED),
                      JobName.CONTACT: (Topic.LEADS_ROUTED, Topic.LEADS_CONTACTED)}[job]
    published = [decode(v) for v in await read_topic(settings, output)]
    distinct = {e.event_id for e in published}
    came_in = {decode(v).lead.lead_id for v in await read_topic(settings, source)}  # type: ignore[attr-defined]
    assert len(came_in) > 40  # more than two batches
    assert {e.lead.lead_id for e in published} == came_in  # type: ignore[attr-defined]
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
        assert await db.fetchval("SELECT count(*) FROM contact_ledger WHERE status <> 'sent'") == 0
        assert await db.fetchval("SELECT count(*) FROM contact_windows") == 0  # all reported


async def test_a_lead_routed_again_in_the_next_batch_is_contacted_and_reported_once(
        settings: Settings, tmp_path: Path) -> None:
    """Batches overlap (one is published while the next is decided): a lead delivered twice,
    e.g. by a producer's retry, may be decided again before its first send is reported. The
    second decision rebuilds the same LeadContacted, which must not reach the log twice."""
    settings = pipeline_settings(settings, write_csv(tmp_path / "l.csv", source_rows(60)), cap=500)
    settings = with_batch_size(settings, 10)
    async with running(settings, *STAGES), Ticker(settings) as ticker:
        for stage in STAGES[:-1]:
            assert (await ticker.run(stage)).status == "completed"
        routed = [decode(v) for v in await read_topic(settings, Topic.LEADS_ROUTED)]
        await publish(settings, routed)  # every lead again, right behind the first copies
        run = await ticker.run(JobName.CONTACT)
        assert run.status == "completed", run
    contacted = [decode(v) for v in await read_topic(settings, Topic.LEADS_CONTACTED)]
    assert len({e.lead.lead_id for e in contacted}) == len(routed) > 20  # type: ignore[attr-defined]
    assert len(contacted) == len(routed), "a LeadContacted reached the log twice"
