"""Controls on the real broker and Postgres: pause / resume, the kill switch, suppressions
(also from a CSV through the CLI), do-not-contact, all re-checked right before each send; a
control published mid-window reaches at most the rest of that window's sends; a window whose
controls cannot be caught up sends nothing and gives its claims back."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from events import (
    CampaignPaused,
    CampaignResumed,
    ControlEvent,
    JobName,
    KillSwitchChanged,
    SuppressionAdded,
)
from services.contact import progress
from services.contact.config import ContactConfig
from services.contact.outbox import Outbox
from services.contact.templates import Message
from services.pipeline.settings import Settings
from services.runtime.errors import InfrastructureError
from tests.harness import Ticker, make_config, publish
from tests.harness.contact import (
    RecordingSender,
    contact_service,
    day,
    db,
    leads,
    ledger,
    make_control,
    routed,
)


async def test_a_paused_campaign_is_skipped_and_its_leads_wait_for_the_resume(
        settings: Settings) -> None:
    await publish(settings, [routed(f"w{i}@wait{i}.com") for i in range(3)])
    await publish(settings, [make_control(CampaignPaused, campaign_id="q4")])
    sender = RecordingSender()
    async with contact_service(settings, sender), Ticker(settings) as ticker:
        scoped = await ticker.run(JobName.CONTACT, at=day(0), tenant_id="acme", campaign_id="q4")
        unscoped = await ticker.run(JobName.CONTACT, at=day(0))
        async with db(settings) as pool:
            waiting = await leads(pool)
        await publish(settings, [make_control(CampaignResumed, campaign_id="q4")])
        resumed = await ticker.run(JobName.CONTACT, at=day(0))
    assert (scoped.status, scoped.reason) == ("skipped", "campaign q4 paused")
    assert unscoped.status == "completed"
    # Consumed from the topic while paused, yet nothing dropped: enrolled, still due.
    assert len(waiting) == 3 and {w["state"] for w in waiting.values()} == {"active"}
    assert {w["step"] for w in waiting.values()} == {0}
    assert resumed.status == "completed"
    assert sorted(sender.recipients()) == [f"w{i}@wait{i}.com" for i in range(3)]


def window_of(settings: Settings, sends: int) -> Settings:
    """Settings whose control window is ``sends`` sends long (1: the feed is read before each)."""
    return settings.using(make_config(settings.prefix,
                                      contact=ContactConfig(control_window_sends=sends)))


async def test_the_kill_switch_skips_runs_and_stops_a_run_between_two_sends(
        settings: Settings) -> None:
    settings = window_of(settings, 1)
    await publish(settings, [routed(f"k{i}@kill{i}.com") for i in range(4)])
    await publish(settings, [make_control(KillSwitchChanged, tenant="*", engaged=True)])

    async def engage_after_first(message: Message, call: int) -> None:
        if call == 1:
            await publish(settings, [make_control(KillSwitchChanged, tenant="*", engaged=True)])

    sender = RecordingSender()
    async with contact_service(settings, sender), Ticker(settings) as ticker:
        skipped = await ticker.run(JobName.CONTACT, at=day(0))
        await publish(settings, [make_control(KillSwitchChanged, tenant="*", engaged=False)])
        sender.before_send = engage_after_first
        mid_run = await ticker.run(JobName.CONTACT, at=day(0))
        async with db(settings) as pool:
            progress = await leads(pool)
    assert (skipped.status, skipped.reason) == ("skipped", "kill switch engaged")
    assert mid_run.status == "completed"
    assert len(sender.sent) == 1  # the switch, engaged during send 1, held every later send
    held = [p for p in progress.values() if p["step"] == 0]
    assert len(held) == 3
    assert {(p["state"], p["hold_reason"]) for p in held} == {("active", "kill_switch")}


async def test_a_suppression_published_mid_run_binds_every_later_send_of_the_run(
        settings: Settings) -> None:
    settings = window_of(settings, 1)
    blocked = [routed(f"b{i}@blocked.example") for i in range(4)]
    fine = [routed(f"f{i}@fine{i}.com") for i in range(4)]
    single = routed("single@fine-too.com")
    await publish(settings, [*blocked, *fine, single])

    async def suppress_during_first(message: Message, call: int) -> None:
        if call == 1:
            await publish(settings, [
                make_control(SuppressionAdded, tenant="*", domain="blocked.example"),
                make_control(SuppressionAdded, email="SINGLE@fine-too.com"),
            ])

    sender = RecordingSender(before_send=suppress_during_first)
    async with contact_service(settings, sender), Ticker(settings) as ticker:
        run = await ticker.run(JobName.CONTACT, at=day(0))
    assert run.status == "completed"
    first, *later = sender.recipients()
    assert later, "the run went on after the suppression"
    assert not [r for r in later if r.endswith("@blocked.example") or r == "single@fine-too.com"]
    assert {f.lead.email for f in fine} <= set(sender.recipients())
    async with db(settings) as pool:
        progress = await leads(pool)
    stopped = {e: p["stopped_reason"] for e, p in progress.items() if p["state"] == "stopped"}
    expected = {b.lead.email: "suppressed_domain" for b in blocked if b.lead.email != first}
    if single.lead.email != first:
        expected[single.lead.email] = "suppressed_email"
    assert stopped == expected


async def test_a_pause_published_mid_window_stops_every_send_after_the_window(
        settings: Settings) -> None:
    window = 10
    settings = window_of(settings, window)
    await publish(settings, [routed(f"m{i}@mid{i}.com") for i in range(60)])
    published_at_call: list[int] = []

    async def pause_during_the_fifteenth(message: Message, call: int) -> None:
        if call == 15:  # the 5th send of the 2nd window
            await publish(settings, [make_control(CampaignPaused, campaign_id="q4")])
            published_at_call.append(call)

    sender = RecordingSender(before_send=pause_during_the_fifteenth)
    async with contact_service(settings, sender), Ticker(settings) as ticker:
        run = await ticker.run(JobName.CONTACT, at=day(0), max_leads=100)
        async with db(settings) as pool:
            progress = await leads(pool)
    assert run.status == "completed" and published_at_call == [15]
    # The rest of the 2nd window may still go out; nothing after it does.
    assert 15 <= len(sender.sent) <= 2 * window
    held = [p for p in progress.values() if p["step"] == 0]
    assert len(held) == 60 - len(sender.sent)
    assert {(p["state"], p["hold_reason"]) for p in held} == {("active", "paused")}


async def test_do_not_contact_and_a_suppression_csv_loaded_by_the_cli_are_honoured(
        settings: Settings, tmp_path: Path) -> None:
    dnc = routed("dnc@corp.com", do_not_contact=True)
    listed = routed("listed@corp.com")
    sub = routed("anyone@sub.csvdomain.org")
    ok = routed("ok@corp.com")
    await publish(settings, [dnc, listed, sub, ok])
    csv_file = tmp_path / "suppress.csv"
    csv_file.write_text("email,domain,reason\nListed@corp.com,,asked\n,csvdomain.org,competitor\n"
                        "not-an-email,,typo\n")
    config = tmp_path / "leadflow.toml"
    config.write_text(f'[topics]\nprefix = "{settings.prefix}"\npartitions = 3\n')
    env = {**os.environ, "DATABASE_URL": settings.database_url,
           "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "LEADFLOW_CONFIG": str(config), "LEADFLOW_TENANT": "acme"}
    cli = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli.main", "contact", "suppress", "--csv", str(csv_file),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, errors = await cli.communicate()
    assert cli.returncode == 0, errors.decode()
    assert "2 control event(s) published" in out.decode()
    assert ":4:" in errors.decode()  # the bad row is reported by line

    sender = RecordingSender()
    async with contact_service(settings, sender), Ticker(settings) as ticker:
        await ticker.run(JobName.CONTACT, at=day(0))
    assert sender.recipients() == ["ok@corp.com"]
    async with db(settings) as pool:
        progress = await leads(pool)
    assert {e: p["stopped_reason"] for e, p in progress.items()} == {
        "dnc@corp.com": "do_not_contact", "listed@corp.com": "suppressed_email",
        "anyone@sub.csvdomain.org": "suppressed_domain", "ok@corp.com": None}


class StalledFeed:
    """A control feed that catches up once (the batch's table read), then never again."""

    def __init__(self) -> None:
        self.syncs = 0

    def mark(self) -> int:
        return 0

    def since(self, mark: int) -> Sequence[ControlEvent]:
        return []

    def lost(self, mark: int) -> bool:
        return False

    async def sync(self, timeout: float) -> None:
        self.syncs += 1
        if self.syncs > 1:
            raise InfrastructureError("the control topic is not applied")


async def test_a_window_whose_controls_cannot_be_caught_up_sends_nothing_and_keeps_no_claim(
        settings: Settings) -> None:
    # A window's keys are claimed while the feed catches up: if the catch-up fails, the sends
    # do not go and the claims are given back, not left for a restart to settle.
    events = [routed(f"s{i}@stall{i}.com") for i in range(4)]
    sender = RecordingSender()
    async with contact_service(settings), db(settings) as pool:
        config = ContactConfig(control_window_sends=2)
        outbox = Outbox(config, pool, sender, StalledFeed(), "instance-stalled")  # type: ignore[arg-type]
        with pytest.raises(InfrastructureError):
            await outbox.attempt_many([progress.enrolled(e, day(0)) for e in events],
                                      events[0].event_id, day(0))
        rows = {r["lead_id"]: r for r in await ledger(pool)}
    assert sorted(sender.recipients()) == ["s0@stall0.com", "s1@stall1.com"]
    first, second = events[:2], events[2:]
    assert {rows[e.lead.lead_id]["status"] for e in first} == {"sent"}
    assert {(rows[e.lead.lead_id]["status"], rows[e.lead.lead_id]["attempts"])
            for e in second} == {("pending", 0)}
