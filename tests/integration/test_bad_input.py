"""Bad input loses nothing: malformed messages and failing leads go to leads.dlq with the reason,
bad source rows are reported by line, and everything good still flows."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest

from events import JobName, LeadStatus, Topic
from services.harvest.config import HarvestConfig, HarvestSource
from services.pipeline.settings import Settings
from services.runtime.bus import Publisher, make_broker
from tests.factories import created_event, lead_factory, source_rows, write_csv
from tests.harness import Ticker, pipeline_settings, project, read_models, running


async def test_malformed_and_failing_messages_go_to_the_dead_letter_topic(settings: Settings) -> None:
    good = [created_event(lead_factory(email=f"ok{i}@acme.com")) for i in range(5)]
    # A LeadCreated whose snapshot says ROUTED: scoring it is an illegal transition.
    poisoned = created_event(lead_factory(email="odd@acme.com", status=LeadStatus.ROUTED))
    broker = make_broker(settings.kafka_bootstrap_servers)
    async with running(settings, JobName.SCORE), Ticker(settings) as ticker:
        await broker.start()
        try:
            await Publisher(broker, settings.pipeline.topics).publish([*good[:2], poisoned, *good[2:]])
            await broker.publish(b'{"type": "lead.created", "event_id": 42}',
                                 Topic.LEADS_NEW.physical(settings.prefix), key=b"junk")
            await broker.publish(b"\xff not json", Topic.LEADS_NEW.physical(settings.prefix))
        finally:
            await broker.stop()
        run = await ticker.run(JobName.SCORE)
    assert run.status == "completed"
    assert (run.leads_processed, run.leads_succeeded, run.leads_failed) == (8, 5, 3)
    await project(settings)
    async with read_models(settings) as db:
        letters = await db.fetch("SELECT * FROM dead_letters ORDER BY origin")
        assert len(letters) == 3
        reasons = {r["error_type"]: r for r in letters}
        assert "IllegalTransition" in reasons and "EventDecodeError" in reasons
        illegal = reasons["IllegalTransition"]
        assert illegal["lead_id"] == poisoned.lead.lead_id
        assert "lead.scored is not allowed from ROUTED" in illegal["error"]
        assert all(r["stage"] == "score" and r["origin"].startswith(
            Topic.LEADS_NEW.physical(settings.prefix)) for r in letters)
        originals = {base64.b64decode(r["payload"]["original"]) for r in letters}
        assert b"\xff not json" in originals
        assert await db.fetchval("SELECT count(*) FROM leads WHERE status = 'SCORED'") == 5


async def test_bad_rows_are_reported_by_line_and_good_rows_still_flow(
        settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = source_rows(6)
    rows.insert(2, {**rows[0], "email": "not-an-email"})       # line 4
    rows.insert(5, {**rows[0], "email": ""})                   # line 7
    rows.insert(6, {**rows[1], "email": "x@y.io", "employees": "many"})  # line 8: a warning
    rows.insert(7, {**rows[1], "email": "nul@y.io", "company": "Ac\x00me"})  # line 9
    path = write_csv(tmp_path / "mixed.csv", rows)
    settings = pipeline_settings(settings, path)
    with caplog.at_level(logging.WARNING, logger="services.harvest"):
        async with running(settings, JobName.HARVEST), Ticker(settings) as ticker:
            run = await ticker.run(JobName.HARVEST)
            again = await ticker.run(JobName.HARVEST)
    assert (run.status, run.leads_succeeded, run.leads_failed) == ("completed", 7, 3)
    assert again.leads_processed == 0  # bad rows are reported once, not on every run
    warnings = [r.getMessage() for r in caplog.records if "employees" in r.getMessage()]
    assert len(warnings) == 1 and f"{path}:8" in warnings[0] and "unknown" in warnings[0]
    await project(settings)
    async with read_models(settings) as db:
        letters = await db.fetch("SELECT origin, error FROM dead_letters ORDER BY origin")
        assert [r["origin"] for r in letters] == [f"{path}:4", f"{path}:7", f"{path}:9"]
        assert "exactly one @" in letters[0]["error"]
        assert "email is missing" in letters[1]["error"]
        assert "company" in letters[2]["error"] and "U+0000" in letters[2]["error"]
        assert await db.fetchval("SELECT count(*) FROM leads") == 7
        assert await db.fetchval("SELECT employees FROM leads WHERE email = 'x@y.io'") is None


async def test_a_missing_or_unreadable_source_fails_the_run_and_the_others_still_flow(
        settings: Settings, tmp_path: Path) -> None:
    good = write_csv(tmp_path / "good.csv", source_rows(5))
    missing, folder = tmp_path / "gone.csv", tmp_path / "a-folder.csv"
    folder.mkdir()
    config = settings.pipeline.model_copy(update={"harvest": HarvestConfig(sources=tuple(
        HarvestSource(path=p, tenant="acme", campaign="q4") for p in (missing, good, folder)))})
    settings = settings.using(config)
    async with running(settings, JobName.HARVEST), Ticker(settings) as ticker:
        run = await ticker.run(JobName.HARVEST)
    assert (run.status, run.leads_succeeded) == ("failed", 5)
    assert f"{missing}: not found" in run.error and f"{folder}: not a file" in run.error
    assert "harvest.sources" in run.error

