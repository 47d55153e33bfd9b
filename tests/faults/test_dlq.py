"""`leadflow dlq list|show|replay`: poison lands in the dead-letter topic with its reason, is
found by reason and topic, and goes back after a fix exactly once. Real broker and Postgres."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import events.envelope
from events import JobName, Topic, encode
from services.cli.main import app
from services.pipeline.settings import Settings
from services.runtime.bus import ensure_topics, make_broker
from tests.factories import created_event, lead_factory
from tests.harness import Ticker, project, read_models, running


async def cli(settings: Settings, config: Path, *args: str) -> str:
    env = {"DATABASE_URL": settings.database_url,
           "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "LEADFLOW_CONFIG": str(config), "COLUMNS": "200"}
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


async def test_dead_letters_are_listed_by_reason_and_replayed_once_after_a_fix(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "dlq.toml"
    config.write_text(f'[topics]\nprefix = "{settings.prefix}"\npartitions = 3\n')
    await ensure_topics(settings.kafka_bootstrap_servers, settings.pipeline.topics)
    good = created_event(lead_factory(email="good@acme.test"))
    future = created_event(lead_factory(email="future@acme.test"))
    newer = json.loads(encode(future))
    newer["schema_version"] = 2  # written by a newer leadflow
    nul = json.loads(encode(created_event(lead_factory(email="nul@acme.test"))))
    nul["lead"]["company"] = "A\u0000B"
    broker = make_broker(settings.kafka_bootstrap_servers)
    await broker.start()
    try:
        topic = Topic.LEADS_NEW.physical(settings.prefix)
        await broker.publish(encode(good), topic, key=good.lead.lead_id.bytes)
        await broker.publish(json.dumps(newer).encode(), topic, key=future.lead.lead_id.bytes)
        await broker.publish(json.dumps(nul).encode(), topic, key=b"nul")
    finally:
        await broker.stop()
    async with running(settings, JobName.SCORE), Ticker(settings) as ticker:
        first = await ticker.run(JobName.SCORE)
        assert (first.leads_succeeded, first.leads_failed) == (1, 2)
        await project(settings)
        await project(settings)  # the letters the first pass published

        listed = await cli(settings, config, "dlq", "list", "--topic", "leads.new")
        assert "2 dead letter(s)" in listed and "U+0000" in listed
        by_reason = await cli(settings, config, "dlq", "list", "--reason", "SCHEMA_VERSION 2")
        assert "1 dead letter(s)" in by_reason
        [letter_id] = [cell for line in by_reason.splitlines() if line.startswith("│")
                       and re.fullmatch(r"[0-9a-f]{8}", cell := line.split("│")[1].strip())]
        shown = await cli(settings, config, "dlq", "show", letter_id)
        assert "future@acme.test" in shown and '"schema_version": 2' in shown

        before = await cli(settings, config, "dlq", "replay", "--topic", "leads.new")
        assert "sent 0 letter(s)" in before and before.count("still invalid") == 2

        monkeypatch.setattr(events.envelope, "SCHEMA_VERSION", 2)  # the fix: an upgrade
        fixed = await cli(settings, config, "dlq", "replay", "--topic", "leads.new")
        assert "sent 1 letter(s)" in fixed and fixed.count("still invalid") == 1
        again = await cli(settings, config, "dlq", "replay", letter_id)
        assert "sent 0 letter(s)" in again and "already replayed" in again

        second = await ticker.run(JobName.SCORE)
        assert (second.leads_succeeded, second.leads_failed) == (1, 0)
    await project(settings)
    async with read_models(settings) as db:
        scored = {r["email"] for r in await db.fetch(
            "SELECT email FROM leads WHERE status = 'SCORED'")}
    assert scored == {"good@acme.test", "future@acme.test"}
