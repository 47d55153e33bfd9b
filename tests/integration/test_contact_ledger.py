"""The send ledger's batch statements find their rows by key, whatever the statistics say."""

from __future__ import annotations

import uuid

import asyncpg

from services.contact import ledger
from tests.factories import NOW


def claims(count: int, token: uuid.UUID, run_id: uuid.UUID) -> list[ledger.Claim]:
    """``count`` claims of one run under ``token``."""
    out = []
    for _ in range(count):
        lead_id = uuid.uuid4()
        out.append(ledger.Claim(
            key=ledger.idempotency_key("q4", lead_id, 1), tenant_id="acme", campaign_id="q4",
            lead_id=lead_id, step=1, sequence_id="standard", sender="proof",
            email="lead@example.com", subject="Hello", message_id=f"<{lead_id}@leadflow>",
            run_id=run_id, cause_event_id=uuid.uuid4(), decided_at=NOW, claimed_by="contact-1",
            claim_token=token))
    return out


async def test_marking_a_window_sent_looks_its_rows_up_by_key_not_by_status(
        pool: asyncpg.Pool) -> None:
    """Every row passes through 'claimed', so the index of unsettled rows holds an entry for
    each past claim until vacuum removes it, while statistics say few rows are claimed: a plan
    that found the window's rows through that index read every dead entry (40,000 at 50,000
    leads in `leadflow bench pipeline`, ~100 µs per send), growing with the ledger."""
    token, run_id = uuid.uuid4(), uuid.uuid4()
    async with pool.acquire() as conn:
        for _ in range(10):
            window = claims(50, token, run_id)
            await ledger.claim_many(conn, window)
            await ledger.mark_sent_many(conn, token, [(c.key, "ok") for c in window],
                                        window_id=uuid.uuid4(), claimed_by="i1")
        # The ledger was small when these windows were planned; a plan cached for the statement
        # then (a scan of the whole table, cheapest at a few hundred rows) would be kept while
        # the ledger grows: the service's connections plan each execution afresh.
        cached = await conn.fetchval(
            "SELECT sum(generic_plans) FROM pg_prepared_statements WHERE statement = $1",
            ledger.MARK_SENT)
        assert cached == 0
        window = claims(50, token, run_id)
        await ledger.claim_many(conn, window)
        await conn.execute(  # a ledger of some size: sends of earlier nights
            """
            INSERT INTO contact_ledger (idempotency_key, tenant_id, campaign_id, lead_id, step,
                                        sequence_id, status, sender, email, cause_event_id)
            SELECT 'q3:' || i, 'acme', 'q3', gen_random_uuid(), 1, 'standard', 'sent', 'proof',
                   'lead@example.com', gen_random_uuid()
            FROM generate_series(1, 50000) AS i
            """)
        await conn.execute("ANALYZE contact_ledger")
        async with conn.transaction():
            plan = "\n".join(r[0] for r in await conn.fetch(
                "EXPLAIN " + ledger.MARK_SENT, [c.key for c in window],
                ["ok"] * len(window), token, uuid.uuid4(), "i1"))
            sent = await ledger.mark_sent_many(conn, token, [(c.key, "ok") for c in window],
                                               window_id=uuid.uuid4(), claimed_by="i1")
    assert "contact_ledger_status" not in plan, plan
    assert "contact_ledger_pkey" in plan, plan
    assert sent == {c.key for c in window}
