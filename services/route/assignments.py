"""Owner of route_assignments and route_counters: round-robin positions that replays reuse."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from .config import Segment
from .decide import owner_at


@dataclass(frozen=True, slots=True)
class Slot:
    """A lead's place in its segment's rotation, and the owner stored with it."""

    segment: str
    seq: int
    owner: str


_EXISTING = """
SELECT lead_id, segment, seq, owner FROM route_assignments WHERE lead_id = ANY($1::uuid[])
"""

# One statement for every (tenant, segment) of a batch, in one sorted order so instances
# never deadlock on the counter rows; returns where each range ends.
_BUMP = """
INSERT INTO route_counters (tenant_id, segment, next_seq)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
ON CONFLICT (tenant_id, segment) DO UPDATE SET next_seq = route_counters.next_seq + EXCLUDED.next_seq
RETURNING tenant_id, segment, next_seq
"""

# Without a transaction around the two: a crash between them leaves a gap in a rotation
# (a position nobody holds), never two leads on one position.
_ASSIGN = """
INSERT INTO route_assignments (lead_id, tenant_id, segment, seq, owner)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::text[])
ON CONFLICT (lead_id) DO UPDATE
SET segment = EXCLUDED.segment, seq = EXCLUDED.seq, owner = EXCLUDED.owner
"""


async def allocate(pool: asyncpg.Pool,
                   wanted: Sequence[tuple[UUID, str, Segment]]) -> dict[UUID, Slot]:
    """Give each (lead, tenant, segment) the next positions of its segment, in input order.

    Leads that already hold a position in the same segment keep it, so a redelivery or a
    replay routes them to the same owner. Three statements per batch, whatever its segments.
    """
    if not wanted:
        return {}
    # One connection for the three statements: each pool call costs a reset round trip.
    async with pool.acquire() as conn:
        return await _allocate(conn, wanted)


async def _allocate(conn: asyncpg.Connection,
                    wanted: Sequence[tuple[UUID, str, Segment]]) -> dict[UUID, Slot]:
    rows = await conn.fetch(_EXISTING, list({w[0] for w in wanted}))
    slots = {r["lead_id"]: Slot(r["segment"], r["seq"], r["owner"]) for r in rows}
    # Dicts as ordered sets: a lead twice in one batch takes one position, found in O(1).
    todo: dict[tuple[str, str], dict[UUID, None]] = defaultdict(dict)
    segments: dict[str, Segment] = {}
    for lead_id, tenant, segment in wanted:
        held = slots.get(lead_id)
        segments[segment.name] = segment
        if held is None or held.segment != segment.name:
            todo[(tenant, segment.name)][lead_id] = None
    keys = sorted(todo)
    if not keys:
        return slots
    ends = await conn.fetch(_BUMP, [k[0] for k in keys], [k[1] for k in keys],
                            [len(todo[k]) for k in keys])
    new: list[tuple[UUID, str, str, int, str]] = []
    for row in ends:
        key = (row["tenant_id"], row["segment"])
        leads = todo[key]
        start = row["next_seq"] - len(leads)
        for offset, lead_id in enumerate(leads):
            seq = start + offset
            owner = owner_at(segments[key[1]], seq)
            slots[lead_id] = Slot(key[1], seq, owner)
            new.append((lead_id, key[0], key[1], seq, owner))
    await conn.execute(_ASSIGN, *(list(column) for column in zip(*new, strict=True)))
    return slots


async def record_owners(pool: asyncpg.Pool, owners: dict[UUID, str]) -> None:
    """Store owners that differ from the stored ones (the segment's owners list changed)."""
    if owners:
        await pool.execute(
            """
            UPDATE route_assignments AS a SET owner = u.owner
            FROM unnest($1::uuid[], $2::text[]) AS u(lead_id, owner)
            WHERE a.lead_id = u.lead_id AND a.owner IS DISTINCT FROM u.owner
            """,
            list(owners), list(owners.values()))
