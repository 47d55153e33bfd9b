"""Route's round-robin positions on the real Postgres: consecutive per tenant and segment in
input order, kept on redelivery, the owner stored as the rotation gives it."""

from __future__ import annotations

import uuid

import asyncpg

from services.route import assignments
from services.route.config import Segment
from services.route.decide import assign

EAST = Segment(name="east", sequence="standard", owners=("ann", "bob", "cy"))
WEST = Segment(name="west", sequence="standard", owners=("dee", "eve"))


async def stored(pool: asyncpg.Pool) -> dict[uuid.UUID, tuple[str, str, int, str]]:
    rows = await pool.fetch("SELECT lead_id, tenant_id, segment, seq, owner FROM route_assignments")
    return {r["lead_id"]: (r["tenant_id"], r["segment"], r["seq"], r["owner"]) for r in rows}


async def test_positions_are_consecutive_per_tenant_and_segment_and_kept_on_redelivery(
        pool: asyncpg.Pool) -> None:
    a, b, c, d, e = (uuid.uuid4() for _ in range(5))
    first = await assignments.allocate(pool, [
        (a, "acme", EAST), (b, "acme", WEST), (c, "acme", EAST), (d, "globex", EAST),
        (a, "acme", EAST)])  # the same lead twice in one batch takes one position
    assert {k: (s.segment, s.seq) for k, s in first.items()} == {
        a: ("east", 0), b: ("west", 0), c: ("east", 1), d: ("east", 0)}
    assert await stored(pool) == {
        a: ("acme", "east", 0, "ann"), b: ("acme", "west", 0, "dee"),
        c: ("acme", "east", 1, "bob"), d: ("globex", "east", 0, "ann")}

    # Redelivered leads keep their positions; new ones continue the rotation; a lead whose
    # segment changed (new rules) takes the next position of its new segment.
    again = await assignments.allocate(pool, [(c, "acme", EAST), (e, "acme", EAST),
                                              (b, "acme", EAST)])
    assert {k: (s.segment, s.seq) for k, s in again.items()} == {
        c: ("east", 1), e: ("east", 2), b: ("east", 3)}
    assert (await stored(pool))[b] == ("acme", "east", 3, "ann")
    for lead, slot in again.items():
        assert slot.owner == assign(EAST, slot.seq).owner, lead


async def test_an_owner_changed_by_new_rules_is_recorded(pool: asyncpg.Pool) -> None:
    lead = uuid.uuid4()
    slot = (await assignments.allocate(pool, [(lead, "acme", EAST)]))[lead]
    await assignments.record_owners(pool, {lead: "zed"})
    assert (await stored(pool))[lead][3] == "zed"
    assert slot.owner == "ann"
