"""Topics missing: a stage started before `leadflow topics create` says so in one line, waits
without flooding the log, and works once the topics exist; after the broker is replaced by an
empty one, `leadflow status` names every partition whose log ends before the read models, and
the stage goes on by itself once the topics are back. Real broker and Postgres."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

import pytest
from rich.console import Console

from events import JobName, Topic
from services.cli.services import build_job_service
from services.cli.status_commands import show_status
from services.pipeline.settings import Settings
from services.runtime.bus import ensure_topics
from services.runtime.embedded import TansuBroker
from tests.harness import Ticker, project, publish_leads, running


def missing_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if getattr(r, "action", "") == "topics_missing"]


async def test_a_stage_started_before_its_topics_says_so_once_waits_and_then_runs(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="services")
    service = build_job_service(JobName.SCORE.value, settings)
    starting = asyncio.create_task(service.start())
    try:
        await asyncio.sleep(4)  # several looks at the broker meanwhile
        assert not starting.done(), "the stage gave up instead of waiting for its topics"
        lines = missing_lines(caplog)
        assert len(lines) == 1, lines  # one line, not one per look
        assert Topic.LEADS_NEW.physical(settings.prefix) in lines[0]
        assert "leadflow topics create" in lines[0]

        await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
        await asyncio.wait_for(starting, 60)
        await asyncio.wait_for(service.wait_ready(), 60)
        await publish_leads(settings, 12, "late")
        async with Ticker(settings) as ticker:
            run = await ticker.run(JobName.SCORE, timeout=60)
        assert (run.status, run.leads_processed) == ("completed", 12)
    finally:
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await service.stop()
    assert any(getattr(r, "action", "") == "topics_found" for r in caplog.records)


@pytest.mark.any_broker  # brings its own Tansu, to replace it
async def test_after_the_broker_is_replaced_status_names_the_loss_and_the_stage_resumes(
        settings: Settings, tmp_path: Path) -> None:
    first = TansuBroker(log_file=tmp_path / "first.log")
    bootstrap = await asyncio.to_thread(first.start)
    replacement: TansuBroker | None = None
    settings = settings.model_copy(update={"kafka_bootstrap_servers": bootstrap})
    try:
        async with running(settings, JobName.SCORE), Ticker(settings) as ticker:
            await publish_leads(settings, 30, "before")
            run = await ticker.run(JobName.SCORE, timeout=60)
            assert (run.status, run.leads_processed) == ("completed", 30)
        await project(settings)

        async with running(settings, JobName.SCORE):
            await asyncio.to_thread(first.stop)  # the broker is replaced by an empty one
            replacement = TansuBroker(port=first.port, log_file=tmp_path / "replacement.log")
            await asyncio.to_thread(replacement.start)

            out = io.StringIO()
            ok = await show_status(settings, Console(file=out, width=200), 60)
            text = out.getvalue()
            assert not ok, text
            assert "holds less than the read models" in text
            for topic in (Topic.LEADS_NEW, Topic.LEADS_SCORED, Topic.JOBS_EVENTS):
                assert f"{topic.physical(settings.prefix)}[0]: missing on the broker" in text
            assert "leadflow projector adopt-log" in text

            # `leadflow topics create`, new leads and a tick: the running stage takes them.
            await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
            await publish_leads(settings, 20, "after")
            async with Ticker(settings) as ticker:
                run = await ticker.run(JobName.SCORE, timeout=90)
            assert (run.status, run.leads_processed) == ("completed", 20)

        out = io.StringIO()
        assert not await show_status(settings, Console(file=out, width=200), 60)
        assert "the log ends at offset" in out.getvalue()  # fewer events than were folded
    finally:
        for broker in (first, replacement):
            if broker is not None:
                await asyncio.to_thread(broker.stop)
