"""Retries and the circuit breaker on the real broker and Postgres: a transient failure is
retried with exponential backoff via next_action_at, then marked failed with its reason (as
the dashboard query shows it); the breaker skips sends after N failures until a probe works."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from events import JobName
from services.contact import queries
from services.contact.config import BreakerConfig, ContactConfig, RetryConfig
from services.pipeline.settings import Settings
from tests.harness import Ticker, make_config, publish
from tests.harness.contact import RecordingSender, contact_service, db, failing, leads, routed

START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def with_contact(settings: Settings, **fields: object) -> Settings:
    return settings.using(make_config(settings.prefix, contact=ContactConfig(**fields)))


async def test_transient_failures_back_off_then_the_step_is_marked_failed_with_its_reason(
        settings: Settings) -> None:
    settings = with_contact(settings, retry=RetryConfig(
        base=timedelta(seconds=300), cap=timedelta(seconds=500), max_retries=2))
    await publish(settings, [routed("flaky@flaky.com")])
    sender = RecordingSender(before_send=failing(99))
    due_times = []
    async with contact_service(settings, sender), Ticker(settings) as ticker, db(settings) as pool:
        await ticker.run(JobName.CONTACT, at=START)
        due_times.append((await leads(pool))["flaky@flaky.com"]["next_action_at"])
        await ticker.run(JobName.CONTACT, at=START + timedelta(seconds=299))  # not due yet
        calls_before_due = sender.calls
        await ticker.run(JobName.CONTACT, at=START + timedelta(seconds=300))
        due_times.append((await leads(pool))["flaky@flaky.com"]["next_action_at"])
        await ticker.run(JobName.CONTACT, at=START + timedelta(seconds=800))
        progress = (await leads(pool))["flaky@flaky.com"]
        failures = await queries.failed_attempts(pool, "q4")
        summary = await queries.campaign_summary(pool, "q4")
    # 300 s x 2^0, then min(300 s x 2^1, 500 s cap)
    assert due_times == [START + timedelta(seconds=300), START + timedelta(seconds=800)]
    assert calls_before_due == 1
    assert sender.calls == 3 and sender.sent == []
    assert (progress["state"], progress["next_action_at"]) == ("failed", None)
    assert progress["last_error"] == "gave up after 3 attempts: 451 try again later"
    assert [(f["email"], f["step"], f["attempts"], f["error"]) for f in failures] == [
        ("flaky@flaky.com", 1, 3, "gave up after 3 attempts: 451 try again later")]
    assert summary["sends"] == {"failed": 1} and summary["leads"] == {"failed": 1}


async def test_the_breaker_opens_after_consecutive_failures_and_a_successful_probe_closes_it(
        settings: Settings) -> None:
    settings = with_contact(settings, breaker=BreakerConfig(failures=2,
                                                            probe_after=timedelta(minutes=5)),
                            retry=RetryConfig(max_retries=5))
    await publish(settings, [routed(f"cb{i}@cb{i}.com") for i in range(5)])
    sender = RecordingSender(before_send=failing(2))
    now = [1000.0]
    async with contact_service(settings, sender) as service, Ticker(settings) as ticker, \
            db(settings) as pool:
        outbox = service.executor.outbox  # type: ignore[union-attr]
        outbox.clock = lambda: now[0]
        await ticker.run(JobName.CONTACT, at=START)
        calls_while_open = sender.calls
        held = [p for p in (await leads(pool)).values() if p["hold_reason"] == "circuit_open"]
        await ticker.run(JobName.CONTACT, at=START + timedelta(minutes=1))
        calls_before_probe = sender.calls
        now[0] += 301  # the probe interval has passed; the sender works again
        await ticker.run(JobName.CONTACT, at=START + timedelta(minutes=2))
    assert calls_while_open == 2  # two failures opened it; the other three were not tried
    assert len(held) == 3 and {p["state"] for p in held} == {"active"}
    assert calls_before_probe == 2  # still open: nothing tried
    assert len(sender.sent) == 3  # the probe worked and closed it; the rest went out
    assert not outbox.breaker.open
