"""Pure outreach decisions: next step, backoff, who may be contacted, limits, the breaker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from events import (
    CampaignPaused,
    CampaignResumed,
    ControlEvent,
    KillSwitchChanged,
    LeadReplied,
    LeadUnsubscribed,
    SuppressionAdded,
)
from services.contact.config import ContactConfig, DomainRateConfig, QuotaConfig
from services.contact.policy import (
    Block,
    Breaker,
    ControlSnapshot,
    ControlState,
    Limit,
    allocate,
    backoff,
    blocked,
    breaker_admits,
    breaker_after,
    domain_and_parents,
    fixed_window,
    limits_for,
    local_day,
    next_step,
    outreach_after,
    quota_allows,
    retry_decision,
    tightened,
)
from tests.factories import lead_factory

SEQ = ContactConfig().sequences["standard"]
AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
LEAD = lead_factory(email="ada@mail.engines.com", tenant_id="acme", campaign_id="q4")


@pytest.mark.parametrize(("sent", "expected"), [(0, 1), (1, 2), (2, 3), (3, None), (7, None)])
def test_next_step(sent: int, expected: int | None) -> None:
    assert next_step(sent, SEQ) == expected


def test_outreach_after_schedules_the_next_step_after_the_cooldown_until_the_last() -> None:
    assert outreach_after("standard", SEQ, 1, AT).next_action_at == AT + timedelta(hours=24)
    last = outreach_after("standard", SEQ, 3, AT)
    assert (last.next_action_at, last.stopped_reason) == (None, "completed")


@pytest.mark.parametrize(("retry", "seconds"), [(0, 300), (1, 600), (2, 1200), (5, 3600), (90, 3600)])
def test_backoff_doubles_up_to_the_cap(retry: int, seconds: int) -> None:
    assert backoff(retry, timedelta(seconds=300), timedelta(hours=1)) == timedelta(seconds=seconds)


@pytest.mark.parametrize(("failures", "decision"), [(1, "retry"), (3, "retry"), (4, "give_up")])
def test_retry_decision(failures: int, decision: str) -> None:
    assert retry_decision(failures, max_retries=3) == decision


@pytest.mark.parametrize(("lead", "state", "expected"), [
    ({}, ControlState(), None),
    ({"do_not_contact": True}, ControlState(), Block("stop", "do_not_contact")),
    ({}, ControlState(unsubscribed=True, paused=True), Block("stop", "unsubscribed")),
    ({}, ControlState(replied=True), Block("stop", "replied")),
    ({}, ControlState(suppressed="domain"), Block("stop", "suppressed_domain")),
    ({}, ControlState(kill_switch=True, paused=True), Block("hold", "kill_switch")),
    ({}, ControlState(paused=True), Block("hold", "paused")),
])
def test_blocked_names_the_most_permanent_reason(lead: dict[str, object], state: ControlState,
                                                  expected: Block | None) -> None:
    assert blocked(lead_factory(**lead), state) == expected


def test_a_suppressed_domain_covers_its_subdomains() -> None:
    assert domain_and_parents("Mail.EU.Acme.com") == ["mail.eu.acme.com", "eu.acme.com", "acme.com"]
    assert domain_and_parents("localhost") == ["localhost"]


@pytest.mark.parametrize(("at", "zone", "start"), [
    (datetime(2026, 11, 20, 4, 59, tzinfo=UTC), "America/New_York",
     datetime(2026, 11, 19, 5, 0, tzinfo=UTC)),
    (datetime(2026, 11, 20, 5, 0, tzinfo=UTC), "America/New_York",
     datetime(2026, 11, 20, 5, 0, tzinfo=UTC)),
    (datetime(2026, 11, 20, 23, 30, tzinfo=UTC), "Europe/Berlin",
     datetime(2026, 11, 20, 23, 0, tzinfo=UTC)),
    (datetime(2026, 3, 8, 12, 0, tzinfo=UTC), "America/New_York",  # DST starts: a 23 h day
     datetime(2026, 3, 8, 5, 0, tzinfo=UTC)),
])
def test_local_day_in_the_tenants_timezone(at: datetime, zone: str, start: datetime) -> None:
    begin, end = local_day(at, zone)
    assert begin == start
    assert (end - begin) in (timedelta(hours=23), timedelta(hours=24), timedelta(hours=25))


def test_fixed_window() -> None:
    start, end = fixed_window(datetime(2026, 11, 20, 9, 42, tzinfo=UTC), timedelta(hours=1))
    assert (start, end) == (datetime(2026, 11, 20, 9, tzinfo=UTC), datetime(2026, 11, 20, 10, tzinfo=UTC))


@pytest.mark.parametrize(("used", "limit", "ok"), [(0, None, True), (4, 5, True), (5, 5, False),
                                                   (0, 0, False)])
def test_quota_allows(used: int, limit: int | None, ok: bool) -> None:
    assert quota_allows(used, limit) is ok


def test_limits_for_uses_overrides_and_the_recipients_domain() -> None:
    config = ContactConfig(quotas=QuotaConfig(daily_per_campaign=10, daily_per_tenant=20,
                                              campaigns={"q4": 3}, timezones={"acme": "Asia/Tokyo"}),
                           domain_rate=DomainRateConfig(max_sends=2))
    limits = limits_for(lead_factory(email="x@Sub.Corp.com"), config, AT)
    assert [(lim.scope, lim.limit) for lim in limits] == [
        ("campaign:acme:q4", 3), ("tenant:acme", 20), ("domain:sub.corp.com", 2)]
    assert limits[0].start == datetime(2026, 11, 19, 15, 0, tzinfo=UTC)  # midnight in Tokyo
    assert limits_for(lead_factory(), ContactConfig(), AT) == []


def test_the_breaker_opens_skips_probes_once_and_closes_on_success() -> None:
    probe = timedelta(seconds=60)
    b = breaker_after(Breaker(), False, 0.0, threshold=2)
    assert breaker_admits(b, 1.0, probe)[0]  # one failure: still closed
    b = breaker_after(b, False, 10.0, threshold=2)
    assert b.open and not breaker_admits(b, 69.0, probe)[0]
    admitted, probing = breaker_admits(b, 70.0, probe)
    assert admitted and probing.probing
    assert not breaker_admits(probing, 71.0, probe)[0]  # one probe at a time
    reopened = breaker_after(probing, False, 75.0, threshold=2)
    assert reopened.open and not breaker_admits(reopened, 100.0, probe)[0]
    assert breaker_after(probing, True, 75.0, threshold=2) == Breaker()


def test_sequences_longer_than_max_steps_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"raise contact\.max_steps"):
        ContactConfig(max_steps=2)


# --- controls in memory, limits for a batch ------------------------------------------------


def control(cls: type, tenant: str = "acme", **fields: object) -> object:
    return cls(event_id=uuid4(), occurred_at=AT, recorded_at=AT, tenant_id=tenant,
               requested_by="test", **fields)


def test_a_snapshot_answers_as_the_control_tables_do() -> None:
    lead = lead_factory(email="Ada@Mail.Engines.com", tenant_id="acme", campaign_id="q4")
    assert ControlSnapshot().state_for(lead) == ControlState()
    snap = ControlSnapshot(kill_switches=frozenset({"*"}), pauses=frozenset({("acme", "q4")}),
                           suppressions=frozenset({("*", "domain", "engines.com"),
                                                   ("acme", "email", "ada@mail.engines.com")}),
                           unsubscribes=frozenset({("acme", "ada@mail.engines.com")}),
                           replies=frozenset({lead.lead_id}))
    assert snap.state_for(lead) == ControlState(kill_switch=True, paused=True,
                                                suppressed="domain", unsubscribed=True,
                                                replied=True)
    other = lead_factory(email="bob@else.com", tenant_id="globex", campaign_id="q4")
    assert snap.state_for(other) == ControlState(kill_switch=True)


@pytest.mark.parametrize(("event", "expected"), [
    (control(KillSwitchChanged, "*", engaged=True), ControlState(kill_switch=True)),
    (control(KillSwitchChanged, "acme", engaged=False), ControlState()),
    (control(KillSwitchChanged, "globex", engaged=True), ControlState()),
    (control(CampaignPaused, campaign_id="q4"), ControlState(paused=True)),
    (control(CampaignPaused, campaign_id="q1"), ControlState()),
    (control(SuppressionAdded, domain="Engines.com."), ControlState(suppressed="domain")),
    (control(SuppressionAdded, email=" ADA@mail.engines.com"), ControlState(suppressed="email")),
    (control(LeadUnsubscribed, email="ada@mail.engines.com"), ControlState(unsubscribed=True)),
    (control(LeadReplied, "globex", lead_id=LEAD.lead_id), ControlState(replied=True)),
])
def test_control_events_applied_since_the_snapshot_tighten_the_state(
        event: ControlEvent, expected: ControlState) -> None:
    assert tightened(ControlState(), LEAD, [event]) == expected


def test_lifting_a_control_waits_for_the_next_snapshot() -> None:
    state = ControlState(paused=True, kill_switch=True)
    events = [control(CampaignResumed, campaign_id="q4"),
              control(KillSwitchChanged, "*", engaged=False)]
    assert tightened(state, LEAD, events) == state  # type: ignore[arg-type]


def limit(scope: str, n: int) -> Limit:
    return Limit(scope, AT, AT + timedelta(days=1), n, f"{scope}_quota")


def test_allocate_admits_in_order_all_or_none_and_returns_the_rest() -> None:
    campaign, tenant, domain = limit("campaign", 10), limit("tenant", 2), limit("domain:a", 10)
    wanted = [[campaign, tenant, domain], [campaign, domain], [campaign, tenant],
              [campaign, tenant, domain]]
    granted = {("campaign", AT): 4, ("tenant", AT): 2, ("domain:a", AT): 2}
    verdicts, left = allocate(wanted, granted)
    # the 4th finds the tenant's units (and the domain's) spent: it takes none of the campaign's
    assert verdicts == [None, None, None, tenant]
    assert left == {("campaign", AT): 1}
    assert allocate([[], [campaign]], {}) == ([None, campaign], {})
