"""Leads per status, on a real Postgres: the projector moves each lead between the lead_counts
rows in the transaction that writes it; a status change is a HOT update of ``leads`` (no index
entry to write); a database made before lead_counts gets them from the leads it holds; the
dashboard's counts are read from them."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest

from events import LeadEvent
from services.projector import store
from services.projector.fold import Positioned, fold
from services.projector.queries import campaigns, leads_page, status_counts
from services.runtime.db import READ_SCHEMA, apply_read_models, connect, quote_ident
from tests.factories import happy_path, lead_factory


@pytest.fixture
async def conn(database: str) -> AsyncIterator[asyncpg.Connection]:
    async with connect(database) as conn:
        await conn.execute(f"SET search_path TO {quote_ident(READ_SCHEMA)}")
        yield conn


async def project(conn: asyncpg.Connection, events: Sequence[LeadEvent]) -> None:
    """What the projector does with one batch, without the broker: load, fold, write."""
    batch = [Positioned("leads", 0, i, e) for i, e in enumerate(events)]
    async with conn.transaction():
        await store.write(conn, fold(batch, await store.load(conn, batch)))


async def counted(conn: asyncpg.Connection) -> dict[tuple[str, str, str], int]:
    return {(r["tenant_id"], r["campaign_id"], r["status"]): r["n"]
            for r in await conn.fetch("SELECT * FROM lead_counts")}


async def scanned(conn: asyncpg.Connection) -> dict[tuple[str, str, str], int]:
    return {(r["tenant_id"], r["campaign_id"], r["status"]): r["n"] for r in await conn.fetch(
        "SELECT tenant_id, campaign_id, status, count(*) AS n FROM leads "
        "GROUP BY tenant_id, campaign_id, status")}


def paths() -> list[list[LeadEvent]]:
    leads = [lead_factory(tenant_id="acme", campaign_id="c1"),
             lead_factory(tenant_id="acme", campaign_id="c2"),
             lead_factory(tenant_id="globex", campaign_id="c1")]
    return [happy_path(lead) for lead in leads]


async def test_each_write_moves_the_counts_and_a_status_change_writes_no_index_entry(
        conn: asyncpg.Connection) -> None:
    leads = paths()
    await project(conn, [p[0] for p in leads])
    assert await counted(conn) == {("acme", "c1", "NEW"): 1, ("acme", "c2", "NEW"): 1,
                                   ("globex", "c1", "NEW"): 1}
    for step in range(1, 4):
        async with conn.transaction():
            await project(conn, [p[step] for p in leads])
            updated = await conn.fetchrow(  # what this session has not reported yet
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables "
                "WHERE relname = 'leads' AND schemaname = $1", READ_SCHEMA)
        # HOT: the new row version needs no index entry, since no index covers a column a
        # status change writes (the status indexes became lead_counts).
        assert updated["n_tup_hot_upd"] == updated["n_tup_upd"] >= 3, dict(updated)
        assert await counted(conn) == await scanned(conn)
    # A stale redelivery and a batch with two steps of one lead move each lead once.
    await project(conn, [leads[0][1], leads[0][4], leads[0][5], leads[1][4]])
    assert await counted(conn) == await scanned(conn) == {
        ("acme", "c1", "CONTACTED"): 1, ("acme", "c2", "CONTACTED"): 1,
        ("globex", "c1", "ROUTED"): 1}

    assert await status_counts(conn) == {"NEW": 0, "SCORED": 0, "QUALIFIED": 0, "ROUTED": 1,
                                         "CONTACTED": 2, "REJECTED": 0}
    assert (await status_counts(conn, tenant="acme"))["CONTACTED"] == 2
    assert {(c["campaign_id"], c["tenant_id"]): c["leads"] for c in await campaigns(conn)} == {
        ("c1", "acme"): 1, ("c2", "acme"): 1, ("c1", "globex"): 1}
    page = await leads_page(conn, status="CONTACTED", tenant="acme")
    assert page["total"] == 2 and len(page["items"]) == 2
    page = await leads_page(conn, status="CONTACTED", q="no-such-lead")
    assert page["total"] == 0 and page["items"] == []


async def test_a_database_made_before_lead_counts_gets_them_from_its_leads(
        conn: asyncpg.Connection) -> None:
    leads = paths()
    await project(conn, [e for p in leads for e in p[:3]])
    # As an older release left it: no lead_counts, the two status indexes on leads.
    await conn.execute("DROP TABLE lead_counts")
    await conn.execute("CREATE INDEX leads_status ON leads (status)")
    await conn.execute("CREATE INDEX leads_campaign_status ON leads (campaign_id, status)")
    async with conn.transaction():
        await apply_read_models(conn, READ_SCHEMA)
    await conn.execute(f"SET search_path TO {quote_ident(READ_SCHEMA)}")
    assert await counted(conn) == await scanned(conn) == Counter(
        {("acme", "c1", "QUALIFIED"): 1, ("acme", "c2", "QUALIFIED"): 1,
         ("globex", "c1", "QUALIFIED"): 1})
    assert await conn.fetchval(
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'leads' AND schemaname = $1",
        READ_SCHEMA) == 1  # the primary key alone
    # Applying the read models again (every migrate does) counts nothing twice.
    async with conn.transaction():
        await apply_read_models(conn, READ_SCHEMA)
    await project(conn, [p[3] for p in leads])
    assert await counted(conn) == await scanned(conn)
