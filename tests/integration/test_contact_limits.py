"""Limits on the real broker and Postgres: daily quotas per campaign and per tenant (in the
tenant's timezone), the per-domain rate limit, max_leads_per_run. A lead held back by a limit
stays due and goes out in a later tick: nothing is dropped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from events import JobName
from services.contact.config import (
    ContactConfig,
    DomainRateConfig,
    QuotaConfig,
    SequenceConfig,
    SequenceStep,
)
from services.pipeline.settings import Settings
from tests.harness import Ticker, make_config, publish
from tests.harness.contact import RecordingSender, contact_service, db, leads, routed

ONE_STEP = SequenceConfig(steps=(SequenceStep(name="intro", subject="Hi {company}", body="Hi"),))


def with_contact(settings: Settings, **fields: object) -> Settings:
    contact = ContactConfig(sequences={"standard": ONE_STEP, "enterprise": ONE_STEP}, **fields)
    return settings.using(make_config(settings.prefix, contact=contact))


async def test_daily_quotas_hold_the_rest_until_the_tenants_next_local_day(
        settings: Settings) -> None:
    # 09:00 UTC on 20 Nov is 04:00 in New York; the tenant's day ends at 05:00 UTC on 21 Nov.
    settings = with_contact(settings, quotas=QuotaConfig(
        daily_per_campaign=2, daily_per_tenant=3, timezones={"acme": "America/New_York"}))
    q4 = [routed(f"q4-{i}@a{i}.com") for i in range(3)]
    q1 = [routed(f"q1-{i}@b{i}.com", campaign_id="q1") for i in range(3)]
    await publish(settings, [*q4, *q1])
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    next_local_day = datetime(2026, 11, 21, 5, 0, tzinfo=UTC)
    sender = RecordingSender()
    async with contact_service(settings, sender), Ticker(settings) as ticker:
        await ticker.run(JobName.CONTACT, at=start)
        first_day = list(sender.recipients())
        async with db(settings) as pool:
            held = {e: p for e, p in (await leads(pool)).items() if p["step"] == 0}
        await ticker.run(JobName.CONTACT, at=next_local_day - timedelta(minutes=1))
        still_first_day = len(sender.sent)
        await ticker.run(JobName.CONTACT, at=next_local_day)
    assert len(first_day) == 3  # the tenant's quota
    assert sum(r.startswith("q4-") for r in first_day) <= 2  # and each campaign's
    assert sum(r.startswith("q1-") for r in first_day) <= 2
    assert len(held) == 3
    assert {p["state"] for p in held.values()} == {"active"}
    assert {p["next_action_at"] for p in held.values()} == {next_local_day}
    assert {p["hold_reason"] for p in held.values()} <= {"campaign_daily_quota",
                                                          "tenant_daily_quota"}
    assert still_first_day == 3
    assert sorted(sender.recipients()) == sorted(e.lead.email for e in [*q4, *q1])


async def test_the_domain_rate_limit_spreads_sends_to_one_domain(settings: Settings) -> None:
    settings = with_contact(settings, domain_rate=DomainRateConfig(max_sends=2,
                                                                   window=timedelta(hours=1)))
    same = [routed(f"p{i}@bigcorp.com") for i in range(5)]
    other = routed("solo@elsewhere.com")
    await publish(settings, [*same, other])
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    sender = RecordingSender()
    counts = []
    async with contact_service(settings, sender), Ticker(settings) as ticker:
        for hour in range(3):
            await ticker.run(JobName.CONTACT, at=start + timedelta(hours=hour))
            counts.append(sum(r.endswith("@bigcorp.com") for r in sender.recipients()))
    assert counts == [2, 4, 5]
    assert "solo@elsewhere.com" in sender.recipients()[:3]  # other domains are not held back
    assert len(set(sender.recipients())) == 6


async def test_max_leads_per_run_leaves_the_rest_for_later_ticks(settings: Settings) -> None:
    settings = with_contact(settings)
    events = [routed(f"cap{i}@cap{i}.com") for i in range(5)]
    await publish(settings, events)
    sender = RecordingSender()
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    async with contact_service(settings, sender), Ticker(settings) as ticker:
        runs = [await ticker.run(JobName.CONTACT, max_leads=2, at=start) for _ in range(4)]
    assert [r.leads_processed for r in runs] == [2, 2, 1, 0]
    assert sorted(sender.recipients()) == sorted(e.lead.email for e in events)
    async with db(settings) as pool:
        assert {p["step"] for p in (await leads(pool)).values()} == {1}
