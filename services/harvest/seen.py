"""Owner of harvest_seen and harvest_rejects: what harvest already emitted or reported."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from uuid import UUID

import asyncpg

from events import Lead

from .normalize import RowError


async def unseen(pool: asyncpg.Pool, lead_ids: Sequence[UUID]) -> set[UUID]:
    """The ids among ``lead_ids`` that harvest has never emitted."""
    if not lead_ids:
        return set()
    rows = await pool.fetch("SELECT lead_id FROM harvest_seen WHERE lead_id = ANY($1::uuid[])",
                            list(lead_ids))
    return set(lead_ids) - {r["lead_id"] for r in rows}


async def mark_seen(pool: asyncpg.Pool, leads: Sequence[Lead]) -> None:
    """Record leads whose LeadCreated the broker acknowledged."""
    if not leads:
        return
    await pool.execute(
        """
        INSERT INTO harvest_seen (lead_id, tenant_id, source)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[])
        ON CONFLICT (lead_id) DO NOTHING
        """,
        [lead.lead_id for lead in leads], [lead.tenant_id for lead in leads],
        [lead.source or "" for lead in leads],
    )


def row_hash(error: RowError) -> str:
    """Identity of a bad row's content, so an edited row is reported anew."""
    return hashlib.sha256(error.raw.encode()).hexdigest()[:32]


async def unreported(pool: asyncpg.Pool, errors: Sequence[RowError]) -> list[RowError]:
    """The bad rows not yet reported (a file read again does not report its bad rows again)."""
    if not errors:
        return []
    rows = await pool.fetch(
        """
        SELECT r.source, r.line, r.row_hash
        FROM harvest_rejects r
        JOIN unnest($1::text[], $2::int[], $3::text[]) AS k(source, line, row_hash)
          USING (source, line, row_hash)
        """,
        [e.source for e in errors], [e.line for e in errors], [row_hash(e) for e in errors],
    )
    known = {(r["source"], r["line"], r["row_hash"]) for r in rows}
    return [e for e in errors if (e.source, e.line, row_hash(e)) not in known]


async def mark_reported(pool: asyncpg.Pool, errors: Sequence[RowError]) -> None:
    if not errors:
        return
    await pool.execute(
        """
        INSERT INTO harvest_rejects (source, line, row_hash, reason)
        SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[])
        ON CONFLICT DO NOTHING
        """,
        [e.source for e in errors], [e.line for e in errors], [row_hash(e) for e in errors],
        [e.reason for e in errors],
    )
