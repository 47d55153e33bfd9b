"""The projector's check for redelivered events finds them through lead_events' primary key,
whatever the batch's size against the table's."""

from __future__ import annotations

from services.projector import store
from services.projector.fold import Positioned
from services.runtime.db import READ_SCHEMA, connect
from tests.factories import created_event


async def test_a_batch_of_suspects_is_looked_up_by_lead_through_the_key_not_by_a_scan(
        database: str) -> None:
    """Every event of the batch sits at or below its lead's stored version (a redelivery after
    a crash, say), so each is a suspect: half of them are stored. Looked up as rows of
    (lead, version, id) joined to the table, the statement was planned as a hash join over
    the whole table; it probes the key once per suspect, and finds exactly the stored ones."""
    events = [created_event() for _ in range(3000)]
    stored = events[::2]
    async with connect(database) as conn:
        await conn.execute(f"SET search_path TO {READ_SCHEMA}")
        await conn.execute(  # earlier nights: events of other leads
            """
            INSERT INTO lead_events (event_id, lead_id, type, version, status, tenant_id,
                                     campaign_id, occurred_at, recorded_at, topic, partition,
                                     "offset", payload)
            SELECT gen_random_uuid(), gen_random_uuid(), 'lead.created', 1, 'NEW', 'acme', 'q3',
                   now(), now(), 'leads.new', 0, i, '{}'
            FROM generate_series(1, 100000) AS i
            """)
        await conn.executemany(
            """
            INSERT INTO leads (lead_id, tenant_id, campaign_id, email, status, version,
                               created_at, updated_at, last_event_id)
            VALUES ($1, 'acme', 'q4', 'lead@example.com', 'SCORED', 2, now(), now(), $2)
            """, [(e.lead.lead_id, e.event_id) for e in events])
        await conn.executemany(
            """
            INSERT INTO lead_events (event_id, lead_id, type, version, status, tenant_id,
                                     campaign_id, occurred_at, recorded_at, topic, partition,
                                     "offset", payload)
            VALUES ($1, $2, 'lead.created', 1, 'NEW', 'acme', 'q4', now(), now(), 'leads.new',
                    1, 0, '{}')
            """, [(e.event_id, e.lead.lead_id) for e in stored])
        await conn.execute("ANALYZE")
        plan = "\n".join(r[0] for r in await conn.fetch(
            "EXPLAIN " + store.KNOWN_LEAD_EVENTS, [e.lead.lead_id for e in events],
            [e.lead.version for e in events], [e.event_id for e in events]))
        loaded = await store.load(conn, [Positioned("leads.new", 0, i, e)
                                         for i, e in enumerate(events)])
    assert "lead_events_pkey" in plan, plan
    assert "Seq Scan" not in plan and "Hash Join" not in plan, plan
    assert loaded.known_event_ids == {e.event_id for e in stored}

