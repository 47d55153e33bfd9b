"""Contact's progress rows on the real broker and Postgres: a routed lead sent at once is
written once; a lead that is not sent still gets its row before its offset commits; a send
whose LeadContacted was never reported is reported by the run that reads the lead again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from events import JobName, LeadContacted, decode
from services.contact import progress as progress_table
from services.contact.executor import ContactExecutor
from services.contact.outbox import Outbox
from services.contact.senders import SendError
from services.pipeline.settings import Settings
from tests.harness import Ticker, publish
from tests.harness.contact import RecordingSender, contact_service, day, db, leads, ledger, routed

# Counts every row written to a table, per lead and kind of write.
_WRITES = """
CREATE TABLE IF NOT EXISTS test_writes (tbl text, lead_id uuid, op text);
CREATE OR REPLACE FUNCTION test_write() RETURNS trigger AS $$
BEGIN
    INSERT INTO test_writes VALUES (TG_TABLE_NAME, NEW.lead_id, TG_OP);
    RETURN NEW;
END $$ LANGUAGE plpgsql;
"""


@asynccontextmanager
async def counted_writes(pool: asyncpg.Pool, table: str = "contact_leads") -> AsyncIterator[None]:
    await pool.execute(_WRITES)
    await pool.execute(f"CREATE OR REPLACE TRIGGER test_write AFTER INSERT OR UPDATE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION test_write()")
    try:
        yield
    finally:
        await pool.execute(f"DROP TRIGGER test_write ON {table}")


async def writes(pool: asyncpg.Pool, table: str = "contact_leads") -> dict[str, list[str]]:
    rows = await pool.fetch("SELECT lead_id, op FROM test_writes WHERE tbl = $1", table)
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(str(r["lead_id"]), []).append(r["op"])
    return out


async def windows(pool: asyncpg.Pool) -> list[list[str]]:
    """The keys of each window of sends not reported yet (contact_windows)."""
    return [list(r["keys"]) for r in await pool.fetch("SELECT keys FROM contact_windows")]


async def test_a_lead_sent_at_once_is_written_once(settings: Settings) -> None:
    events = [routed(f"once{i}@firm{i}.com") for i in range(4)]
    await publish(settings, events)
    sender = RecordingSender()
    async with contact_service(settings, sender), db(settings) as pool:
        async with counted_writes(pool), Ticker(settings) as ticker:
            run = await ticker.run(JobName.CONTACT, at=day(0))
            assert run.status == "completed" and run.leads_processed == 4
            written = await writes(pool)
        progress = await leads(pool)
    # One INSERT per lead: its row is written with the step already sent.
    assert written == {str(e.lead.lead_id): ["INSERT"] for e in events}
    assert len(sender.sent) == 4
    for e in events:
        row = progress[e.lead.email]
        assert (row["step"], row["state"], row["hold_reason"]) == (1, "active", None)
        assert row["source_partition"] is not None and row["last_run_id"] == run.run_id
        assert row["next_action_at"] > day(0)  # the next step's cooldown
        last = decode(row["last_event"])
        assert isinstance(last, LeadContacted) and last.step == 1
        assert last.lead.lead_id == e.lead.lead_id


async def test_a_send_is_written_twice_to_the_ledger_claimed_then_sent(
        settings: Settings) -> None:
    # That its LeadContacted is in the log is recorded once per window (contact_windows), not
    # by a third write of each send's row.
    events = [routed(f"twice{i}@firm{i}.com") for i in range(4)]
    await publish(settings, events)
    sender = RecordingSender()
    async with contact_service(settings, sender), db(settings) as pool:
        async with counted_writes(pool, "contact_ledger"), Ticker(settings) as ticker:
            run = await ticker.run(JobName.CONTACT, at=day(0))
            written = await writes(pool, "contact_ledger")
        rows = await ledger(pool)
        left = await windows(pool)
    assert run.status == "completed" and len(sender.sent) == 4
    assert written == {str(e.lead.lead_id): ["INSERT", "UPDATE"] for e in events}
    assert {r["status"] for r in rows} == {"sent"}
    assert left == []  # every send's LeadContacted was acknowledged


async def test_a_lead_not_sent_gets_its_row_before_the_run_ends(settings: Settings) -> None:
    # The first send fails for good, the second is retried later: neither is sent now, and
    # each must be found by a later run (its row holds why).
    refused, flaky, fine = (routed(f"{n}@hold-{n}.com") for n in ("refused", "flaky", "fine"))
    await publish(settings, [refused, flaky, fine])
    calls: dict[str, int] = {}

    async def before_send(message: Any, call: int) -> None:
        calls[message.to] = calls.get(message.to, 0) + 1
        if message.to == refused.lead.email:
            raise SendError("550 no such mailbox", transient=False)
        if message.to == flaky.lead.email:
            raise SendError("421 try later", transient=True)

    sender = RecordingSender(before_send=before_send)
    async with contact_service(settings, sender), db(settings) as pool:
        async with Ticker(settings) as ticker:
            run = await ticker.run(JobName.CONTACT, at=day(0))
        progress = await leads(pool)
    assert run.status == "completed"
    assert (progress[refused.lead.email]["state"], progress[refused.lead.email]["step"]) == (
        "failed", 0)
    assert progress[flaky.lead.email]["state"] == "active"
    assert progress[flaky.lead.email]["hold_reason"] == "retry"
    assert progress[flaky.lead.email]["next_action_at"] > day(0)
    assert (progress[fine.lead.email]["state"], progress[fine.lead.email]["step"]) == (
        "active", 1)


async def test_a_send_never_reported_is_reported_when_the_lead_is_read_again(
        settings: Settings) -> None:
    # A process sent step 1 and died before its LeadContacted was published: the ledger says
    # sent, the lead has no progress row, and the routed lead's offset was never committed.
    event = routed("unreported@late.test")
    await publish(settings, [event])
    sender = RecordingSender()
    async with contact_service(settings, sender) as service, db(settings) as pool:
        assert isinstance(service.executor, ContactExecutor)
        outbox = service.executor.outbox
        # This instance's earlier life: the same instance id, another process token.
        dead = Outbox(outbox.config, pool, sender, None, outbox.instance_id)
        [attempt] = await dead.attempt_many([progress_table.enrolled(event, day(0))],
                                            event.event_id, day(0))
        assert attempt.kind == "sent" and await leads(pool) == {}
        # A restart's recovery finds the send unreported but leaves it to the lead's redelivery:
        # it has no row to build the event from, and must not close its window.
        assert await outbox.reconcile() == []
        assert await windows(pool) == [[attempt.event.idempotency_key]]
        async with Ticker(settings) as ticker:
            run = await ticker.run(JobName.CONTACT, at=day(0))
            progress = await leads(pool)
            rows = await ledger(pool)
            # The lead moved on: the next recovery closes the window.
            assert (await ticker.run(JobName.CONTACT, at=day(0))).status == "completed"
        left = await windows(pool)
    assert run.status == "completed"
    assert len(sender.sent) == 1  # never sent again
    assert progress[event.lead.email]["step"] == 1
    assert [r["status"] for r in rows] == ["sent"] and left == []
