"""Sequences on the real broker and Postgres: step 1 to routed leads, follow-ups after the
cooldown computed from the ledger, and replies / unsubscribes that stop a sequence."""

from __future__ import annotations

from datetime import timedelta

from events import JobName, LeadReplied, LeadUnsubscribed
from services.pipeline.settings import Settings
from tests.harness import Ticker, project, publish, read_models
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


async def test_each_step_goes_out_after_its_cooldown_and_the_sequence_ends(settings: Settings) -> None:
    events = [routed(f"p{i}@firm{i}.com", company=f"Firm{i}") for i in range(3)]
    await publish(settings, events)
    sender = RecordingSender()
    async with contact_service(settings, sender), Ticker(settings) as ticker:
        first = await ticker.run(JobName.CONTACT, at=day(0))
        early = await ticker.run(JobName.CONTACT, at=day(0) + timedelta(hours=23))
        assert len(sender.sent) == 3  # the 24 h cooldown holds the follow-ups back
        second = await ticker.run(JobName.CONTACT, at=day(1))
        third = await ticker.run(JobName.CONTACT, at=day(2))
        after = await ticker.run(JobName.CONTACT, at=day(9))
    assert [r.status for r in (first, early, second, third, after)] == ["completed"] * 5
    assert (first.leads_processed, early.leads_processed, after.leads_processed) == (3, 0, 0)

    subjects = {(m.to, key.rsplit(":", 1)[1]): m.subject for key, m in sender.sent}
    assert len(sender.sent) == 9 and len(subjects) == 9  # 3 leads x 3 steps, each once
    assert subjects[("p1@firm1.com", "1")] == "Firm1 and leadflow"
    assert subjects[("p1@firm1.com", "2")] == "Re: Firm1 and leadflow"
    assert subjects[("p1@firm1.com", "3")] == "Closing the loop, Ada"
    async with db(settings) as pool:
        progress = await leads(pool)
        assert {p["state"] for p in progress.values()} == {"completed"}
        assert {p["step"] for p in progress.values()} == {3}
        rows = await ledger(pool)
        assert len(rows) == 9 and {r["status"] for r in rows} == {"sent"}
        assert await pool.fetchval("SELECT count(*) FROM contact_windows") == 0  # all reported
    await project(settings)
    async with read_models(settings) as read:
        model = await read.fetch("SELECT status, contact_step, next_action_at FROM leads")
        assert [(r["status"], r["contact_step"], r["next_action_at"]) for r in model] == [
            ("CONTACTED", 3, None)] * 3
        assert await read.fetchval(
            "SELECT count(*) FROM lead_events WHERE type = 'lead.contacted'") == 9


async def test_a_reply_or_an_unsubscribe_stops_the_sequence(settings: Settings) -> None:
    replier, leaver, keeper = (routed(f"{n}@acme-{n}.com") for n in ("replier", "leaver", "keeper"))
    await publish(settings, [replier, leaver, keeper])
    sender = RecordingSender()
    async with contact_service(settings, sender), Ticker(settings) as ticker:
        await ticker.run(JobName.CONTACT, at=day(0))
        await publish(settings, [
            make_control(LeadReplied, lead_id=replier.lead.lead_id),
            make_control(LeadUnsubscribed, email="LEAVER@acme-leaver.com"),
        ])
        await ticker.run(JobName.CONTACT, at=day(1))
        await ticker.run(JobName.CONTACT, at=day(2))
    steps = sorted((m.to, key.rsplit(":", 1)[1]) for key, m in sender.sent)
    assert steps == [("keeper@acme-keeper.com", "1"), ("keeper@acme-keeper.com", "2"),
                     ("keeper@acme-keeper.com", "3"), ("leaver@acme-leaver.com", "1"),
                     ("replier@acme-replier.com", "1")]
    async with db(settings) as pool:
        progress = await leads(pool)
    assert (progress["replier@acme-replier.com"]["state"],
            progress["replier@acme-replier.com"]["stopped_reason"]) == ("stopped", "replied")
    assert (progress["leaver@acme-leaver.com"]["state"],
            progress["leaver@acme-leaver.com"]["stopped_reason"]) == ("stopped", "unsubscribed")
    assert progress["keeper@acme-keeper.com"]["state"] == "completed"
