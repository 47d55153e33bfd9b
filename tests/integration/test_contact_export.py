"""`leadflow contact export` (the real CLI) writes leads.csv, attempts.csv and summary.md."""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from pathlib import Path

from events import JobName
from services.contact.senders import SendError
from services.contact.templates import Message
from services.pipeline.settings import Settings
from tests.harness import Ticker, publish
from tests.harness.contact import RecordingSender, contact_service, day, routed


async def test_export_writes_a_campaigns_leads_attempts_and_summary(
        settings: Settings, tmp_path: Path) -> None:
    await publish(settings, [routed("one@one.com"), routed("two@two.com"),
                             routed("gone@bad.com"), routed("other@q1.com", campaign_id="q1")])

    async def refuse_bad(message: Message, call: int) -> None:
        if message.to.endswith("@bad.com"):
            raise SendError("550 mailbox unavailable", transient=False)

    async with contact_service(settings, RecordingSender(before_send=refuse_bad)), \
            Ticker(settings) as ticker:
        await ticker.run(JobName.CONTACT, at=day(0))
    config = tmp_path / "leadflow.toml"
    config.write_text(f'[topics]\nprefix = "{settings.prefix}"\n')
    out = tmp_path / "artifacts"
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli.main", "contact", "export", "--campaign", "q4",
        "--out", str(out), env={**os.environ, "DATABASE_URL": settings.database_url,
                                "LEADFLOW_CONFIG": str(config)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, errors = await cli.communicate()
    assert cli.returncode == 0, errors.decode()

    leads = list(csv.DictReader((out / "leads.csv").read_text().splitlines()))
    attempts = list(csv.DictReader((out / "attempts.csv").read_text().splitlines()))
    assert sorted((r["email"], r["state"], r["step"]) for r in leads) == [
        ("gone@bad.com", "failed", "0"), ("one@one.com", "active", "1"),
        ("two@two.com", "active", "1")]
    assert sorted((r["email"], r["status"]) for r in attempts) == [
        ("gone@bad.com", "failed"), ("one@one.com", "sent"), ("two@two.com", "sent")]
    assert "refused: 550 mailbox unavailable" in {r["error"] for r in attempts}
    summary = (out / "summary.md").read_text()
    assert "campaign `q4`" in summary and "- Leads: 3" in summary
    assert "- Sends recorded: 2" in summary and "- Failed steps: 1" in summary
