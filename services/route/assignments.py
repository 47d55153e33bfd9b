"""Owner of route_assignments and route_counters: round-robin positions that replays reuse."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg


@dataclass(frozen=True, slots=True)
class Slot:
    """A lead's place in its segment's rotation."""

    segment: str
    seq: int


async def existing(pool: asyncpg.Pool, lead_ids: Sequence[UUID]) -> dict[UUID, Slot]:
    rows = await pool.fetch(
        "SELECT lead_id, segment, seq FROM route_assignments WHERE lead_id = ANY($1::uuid[])",
        list(lead_ids))
    return {r["lead_id"]: Slot(r["segment"], r["seq"]) for r in rows}


async def allocate(pool: asyncpg.Pool, wanted: Sequence[tuple[UUID, str, str]]) -> dict[UUID, Slot]:
    """Give each (lead, tenant, segment) the next positions of its segment, in input order.

    Leads that already hold a position in the same segment keep it, so a redelivery or a
    replay routes them to the same owner.
    """
    if not wanted:
        return {}
    slots = await existing(pool, [w[0] for w in wanted])
    todo: dict[tuple[str, str], list[UUID]] = defaultdict(list)
    for lead_id, tenant, segment in wanted:
        held = slots.get(lead_id)
        queue = todo[(tenant, segment)]
        if (held is None or held.segment != segment) and lead_id not in queue:
            queue.append(lead_id)
    async with pool.acquire() as conn, conn.transaction():
        for (tenant, segment), leads in todo.items():
            if not leads:
                continue
            start = await conn.fetchval(
                """
                INSERT INTO route_counters (tenant_id, segment, next_seq) VALUES ($1, $2, $3)
                ON CONFLICT (tenant_id, segment)
                DO UPDATE SET next_seq = route_counters.next_seq + EXCLUDED.next_seq
                RETURNING next_seq - $3
                """,
                tenant, segment, len(leads))
            for offset, lead_id in enumerate(leads):
                slots[lead_id] = Slot(segment, start + offset)
            await conn.execute(
                """
                INSERT INTO route_assignments (lead_id, tenant_id, segment, seq, owner)
                SELECT l, $2, $3, s, '' FROM unnest($1::uuid[], $4::bigint[]) AS u(l, s)
                ON CONFLICT (lead_id) DO UPDATE SET segment = EXCLUDED.segment, seq = EXCLUDED.seq
                """,
                leads, tenant, segment, [slots[lead].seq for lead in leads])
    return slots


async def record_owners(pool: asyncpg.Pool, owners: dict[UUID, str]) -> None:
    if owners:
        await pool.execute(
            """
            UPDATE route_assignments AS a SET owner = u.owner
            FROM unnest($1::uuid[], $2::text[]) AS u(lead_id, owner)
            WHERE a.lead_id = u.lead_id AND a.owner IS DISTINCT FROM u.owner
            """,
            list(owners), list(owners.values()))
