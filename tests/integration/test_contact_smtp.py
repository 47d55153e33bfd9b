"""The smtp sender against a real SMTP server (aiosmtpd) started by the test, and what happens
to a send interrupted mid-flight: settled, never blindly repeated."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from events import JobName
from services.contact import ledger as ledger_table
from services.contact import progress as progress_table
from services.contact.config import ContactConfig
from services.contact.outbox import Outbox
from services.contact.senders import ProofSender
from services.contact.smtp import SmtpSender
from services.pipeline.settings import Settings
from services.runtime.config import SmtpConfig
from tests.harness import Inbox, Ticker, make_config, publish, smtp_sink
from tests.harness.contact import RecordingSender, contact_service, day, db, leads, ledger, routed


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with smtp_sink(inbox) as port:
        yield inbox, port


def smtp_settings(settings: Settings, port: int) -> Settings:
    contact = ContactConfig(sender="smtp", from_address="sales@leadflow.test",
                            smtp=SmtpConfig(host="127.0.0.1", port=port, tls="none"),
                            list_unsubscribe="https://leadflow.test/u/{lead_id}")
    return settings.using(make_config(settings.prefix, contact=contact))


async def test_messages_reach_a_real_smtp_server_with_an_unsubscribe_header(
        settings: Settings, smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    settings = smtp_settings(settings, port)
    ada = routed("ada@engines.test", company="Engines")
    bounce = routed("bounce@engines.test")
    busy = routed("busy@engines.test")
    await publish(settings, [ada, bounce, busy])
    async with contact_service(settings, SmtpSender(settings.pipeline.contact.smtp,
                                                    "sales@leadflow.test")), \
            Ticker(settings) as ticker:
        run = await ticker.run(JobName.CONTACT, at=day(0))
    assert run.status == "completed"
    assert len(inbox.messages) == 1
    rcpts, message = inbox.messages[0]
    assert rcpts == ["ada@engines.test"]
    assert message["To"] == "ada@engines.test"
    assert message["From"] == "sales@leadflow.test"
    assert message["Subject"] == "Engines and leadflow"
    assert message.get_content().replace("\r\n", "\n") == "Hi Ada,\n\nA quick idea for Engines.\n"
    # a long header is folded on the wire; its value is the same
    assert message["List-Unsubscribe"].strip() == f"<https://leadflow.test/u/{ada.lead.lead_id}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    async with db(settings) as pool:
        rows = {r["email"]: r for r in await ledger(pool)}
        progress = await leads(pool)
    assert message["Message-ID"] == rows["ada@engines.test"]["message_id"]
    assert rows["ada@engines.test"]["status"] == "sent"
    # 550: refused for good, with the reason; 451: retried later, not failed.
    assert rows["bounce@engines.test"]["status"] == "failed"
    assert "550" in rows["bounce@engines.test"]["error"]
    assert progress["bounce@engines.test"]["state"] == "failed"
    assert rows["busy@engines.test"]["status"] == "pending"
    assert progress["busy@engines.test"]["hold_reason"] == "retry"
    assert progress["busy@engines.test"]["next_action_at"] == day(0) + \
        settings.pipeline.contact.retry.base


async def test_sends_reuse_a_few_connections_and_close_them_after_the_run(
        settings: Settings, smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    contact = smtp_settings(settings, port).pipeline.contact.model_copy(
        update={"send_concurrency": 3})
    settings = settings.using(make_config(settings.prefix, contact=contact))
    events = [routed(f"r{i}@reuse{i}.test") for i in range(30)]
    await publish(settings, events)
    sender = SmtpSender(contact.smtp, "sales@leadflow.test")
    async with contact_service(settings, sender), Ticker(settings) as ticker:
        run = await ticker.run(JobName.CONTACT, at=day(0), max_leads=100)
    assert run.status == "completed"
    assert sorted(to for rcpts, _ in inbox.messages for to in rcpts) == \
        sorted(e.lead.email for e in events)
    assert 1 <= sender.connections_opened <= 3  # one per send in flight, not one per send
    assert sender.idle_connections == 0  # closed after the run


class Interrupted(BaseException):
    """Stands in for the process dying in the middle of a send."""


class DyingSender:
    """Dies inside send(), like a crash between the claim and the record of the outcome."""

    confirms_delivery: ClassVar[bool] = False

    def __init__(self, name: str) -> None:
        self.name = name

    async def send(self, message: Any, *, idempotency_key: str) -> str | None:
        raise Interrupted

    async def delivered(self, message_id: str | None, *, idempotency_key: str) -> bool | None:
        raise AssertionError("a dead process answers nothing")


@pytest.mark.parametrize(("sender_name", "settled"), [("smtp", "failed"), ("proof", "sent")])
async def test_a_send_interrupted_mid_flight_is_settled_on_restart_never_repeated(
        settings: Settings, smtp_server: tuple[Inbox, int], sender_name: str,
        settled: str) -> None:
    inbox, port = smtp_server
    config = smtp_settings(settings, port).pipeline.contact
    event = routed("crash@engines.test")
    async with db(settings) as pool:
        await progress_table.enroll(pool, [event], day(0))
        p = (await progress_table.fetch(pool, [event.lead.lead_id]))[event.lead.lead_id]
        before = Outbox(config, pool, DyingSender(sender_name), None, "instance-1")
        with pytest.raises(Interrupted):
            await before.attempt(p, event.event_id, day(0))
        assert [r["status"] for r in await ledger(pool)] == ["claimed"]

        after_sender = SmtpSender(config.smtp, "sales@leadflow.test") \
            if sender_name == "smtp" else ProofSender()
        after = Outbox(config, pool, after_sender, None, "instance-1")  # the restart
        to_report = await after.reconcile()
        await after.reported(to_report, None)
        row = (await ledger(pool))[0]
        assert row["status"] == settled
        assert row["resolution"]
        again = await after.attempt(
            (await progress_table.fetch(pool, [event.lead.lead_id]))[event.lead.lead_id],
            event.event_id, day(1))
        state = (await leads(pool))["crash@engines.test"]
        entry = await ledger_table.status_counts(pool, None)
    assert inbox.messages == []  # never re-sent over SMTP
    if settled == "failed":
        assert (again.kind, state["state"]) == ("failed", "failed")
        assert "outcome unknown" in state["last_error"]
        assert to_report == []
    else:
        # proof mode: completing the send is safe; its LeadContacted was rebuilt and reported
        assert [e.step for e in to_report] == [1]
        assert state["step"] == 1 and again.kind == "sent"  # step 2 is next, step 1 not repeated
    assert entry.get("claimed", 0) == 0


async def test_a_failed_record_stops_the_batch_a_window_later_and_nothing_is_sent_twice(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a sender that can confirm deliveries, a window is recorded while the next one goes,
    under the claims taken for the batch. If a record fails, the window after next is never
    sent: its claims are released; after the restart every step goes exactly once."""
    config = settings.pipeline.contact.model_copy(update={"control_window_sends": 2})
    events = [routed(f"w{i}@engines.test") for i in range(6)]
    ids = [e.lead.lead_id for e in events]
    real_mark_sent = ledger_table.mark_sent_many
    calls = 0

    async def fails_first(*args: Any, **kwargs: Any) -> set[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionResetError("the database went away")
        return await real_mark_sent(*args, **kwargs)

    sender = RecordingSender()
    async with db(settings) as pool:
        await progress_table.enroll(pool, events, day(0))
        ps = await progress_table.fetch(pool, ids)
        monkeypatch.setattr(ledger_table, "mark_sent_many", fails_first)
        before = Outbox(config, pool, sender, None, "instance-1")
        with pytest.raises(ConnectionResetError):
            await before.attempt_many([ps[i] for i in ids], events[0].event_id, day(0))
        rows = {r["email"]: r["status"] for r in await ledger(pool)}
        assert rows == {"w0@engines.test": "claimed", "w1@engines.test": "claimed",
                        "w2@engines.test": "sent", "w3@engines.test": "sent",
                        "w4@engines.test": "pending", "w5@engines.test": "pending"}
        assert sorted(m.to for _, m in sender.sent) == [f"w{i}@engines.test" for i in range(4)]

        after = Outbox(config, pool, sender, None, "instance-1")  # the restart
        await after.reported(await after.reconcile(), None)
        ps = await progress_table.fetch(pool, ids)
        due = [ps[i] for i in ids if ps[i].step == 0]  # the recorded or confirmed sends moved on
        assert [p.lead_id for p in due] == ids[4:]
        attempts = await after.attempt_many(due, events[0].event_id, day(0))
        await after.reported([a.event for a in attempts if a.event is not None], None)
        state = await leads(pool)
    assert sorted(key for key, _ in sender.sent) == sorted(
        ledger_table.idempotency_key(e.lead.campaign_id, e.lead.lead_id, 1) for e in events)
    assert {email: row["step"] for email, row in state.items()} == {
        f"w{i}@engines.test": 1 for i in range(6)}
