"""How much the send path claims at once: a batch when a crash costs no email, a window when
it could (SMTP); claims a stop leaves unsent are let go."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, ClassVar

import pytest

from services.contact import controls as controls_table
from services.contact import ledger as ledger_table
from services.contact import progress as progress_table
from services.contact import usage as usage_table
from services.contact.config import ContactConfig
from services.contact.outbox import Outbox
from services.contact.templates import Message
from services.pipeline.settings import Settings
from tests.harness.contact import RecordingSender, day, db, ledger, routed


class UnconfirmingSender(RecordingSender):
    """Like SMTP: after a crash it cannot tell whether a message left."""

    confirms_delivery: ClassVar[bool] = False


def counted(monkeypatch: pytest.MonkeyPatch, calls: Counter[str], module: Any, name: str) -> None:
    real = getattr(module, name)

    async def spy(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)


def windows_of_two(settings: Settings) -> ContactConfig:
    """Windows of two sends, with a tenant quota so that units are reserved."""
    quotas = settings.pipeline.contact.quotas.model_copy(update={"daily_per_tenant": 100})
    return settings.pipeline.contact.model_copy(
        update={"control_window_sends": 2, "quotas": quotas})


@pytest.mark.parametrize(("sender", "claims"), [(RecordingSender, 1), (UnconfirmingSender, 3)],
                         ids=["confirms-delivery", "cannot-confirm"])
async def test_a_batch_is_claimed_at_once_when_a_crash_costs_no_email_and_sent_by_windows(
        settings: Settings, monkeypatch: pytest.MonkeyPatch, sender: type[RecordingSender],
        claims: int) -> None:
    """Six sends, windows of two: a sender that can confirm deliveries gets the batch's keys
    claimed and its units reserved in one statement each; one that cannot gets them a window
    at a time. Either way the controls are read and the sends recorded once per window."""
    config = windows_of_two(settings)
    events = [routed(f"b{i}@engines.test") for i in range(6)]
    ids = [e.lead.lead_id for e in events]
    calls: Counter[str] = Counter()
    counted(monkeypatch, calls, ledger_table, "claim_many")
    counted(monkeypatch, calls, usage_table, "reserve_many")
    counted(monkeypatch, calls, ledger_table, "mark_sent_many")
    counted(monkeypatch, calls, controls_table, "snapshot")
    out = sender()
    async with db(settings) as pool:
        await progress_table.enroll(pool, events, day(0))
        ps = await progress_table.fetch(pool, ids)
        outbox = Outbox(config, pool, out, None, "instance-1")
        attempts = await outbox.attempt_many([ps[i] for i in ids], events[0].event_id, day(0))
        rows = await ledger(pool)
        used = await usage_table.used(pool, f"tenant:{events[0].lead.tenant_id}")
    assert [a.kind for a in attempts] == ["sent"] * 6
    assert sorted(out.recipients()) == sorted(e.lead.email for e in events)
    assert {r["status"] for r in rows} == {"sent"} and len(rows) == 6
    assert list(used.values()) == [6]
    assert calls == {"claim_many": claims, "reserve_many": claims, "mark_sent_many": 3,
                     "snapshot": 3}


async def test_a_stop_mid_batch_lets_go_of_the_claims_not_sent(
        settings: Settings) -> None:
    """The run stops during the first window of a batch claimed at once: that window goes and
    is recorded, the rest are 'deferred', their keys released and their units given back, and
    a later run sends each of them once."""
    config = windows_of_two(settings)
    events = [routed(f"s{i}@engines.test") for i in range(6)]
    ids = [e.lead.lead_id for e in events]
    stop = asyncio.Event()

    async def stop_now(message: Message, call: int) -> None:
        stop.set()

    out = RecordingSender(before_send=stop_now)
    async with db(settings) as pool:
        await progress_table.enroll(pool, events, day(0))
        ps = await progress_table.fetch(pool, ids)
        outbox = Outbox(config, pool, out, None, "instance-1")
        attempts = await outbox.attempt_many([ps[i] for i in ids], events[0].event_id, day(0),
                                             stop=stop)
        await outbox.reported([a.event for a in attempts if a.event is not None], None)
        statuses = Counter(r["status"] for r in await ledger(pool))
        used = await usage_table.used(pool, f"tenant:{events[0].lead.tenant_id}")

        ps = await progress_table.fetch(pool, ids)
        due = [ps[i] for i in ids if ps[i].step == 0]
        later = await outbox.attempt_many(due, events[0].event_id, day(0))
        final = Counter(r["status"] for r in await ledger(pool))
    assert [a.kind for a in attempts] == ["sent"] * 2 + ["deferred"] * 4
    assert all(a.reason == "the run is stopping" for a in attempts[2:])
    assert statuses == {"sent": 2, "pending": 4}
    assert list(used.values()) == [2]
    assert len(due) == 4 and [a.kind for a in later] == ["sent"] * 4
    assert final == {"sent": 6}
    assert sorted(key for key, _ in out.sent) == sorted(
        ledger_table.idempotency_key(e.lead.campaign_id, e.lead.lead_id, 1) for e in events)
