"""The projector's own progress and the dead letters it folded."""

from __future__ import annotations

from typing import Any

from .common import Conn, iso, plain_row


async def projector_status(conn: Conn) -> dict[str, Any]:
    """Lag (messages not yet folded), events applied, and how old that report is (seconds, by
    the database clock). All None before the projector first reported."""
    row = await conn.fetchrow(
        """
        SELECT lag, events_applied, updated_at,
               extract(epoch FROM now() - updated_at)::float8 AS age_seconds
        FROM projector_progress
        """)
    if row is None:
        return {"lag": None, "events_applied": None, "updated_at": None, "age_seconds": None}
    return {"lag": row["lag"], "events_applied": row["events_applied"],
            "updated_at": iso(row["updated_at"]), "age_seconds": round(row["age_seconds"], 3)}


async def dead_letter_count(conn: Conn, *, tenant: str | None = None) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM dead_letters WHERE ($1::text IS NULL OR tenant_id = $1)", tenant)


async def dead_letters_page(conn: Conn, *, stage: str | None = None, limit: int = 50,
                            offset: int = 0) -> dict[str, Any]:
    """Dead letters, newest first (without the original bytes; they stay in leads.dlq)."""
    total = await conn.fetchval(
        "SELECT count(*) FROM dead_letters WHERE ($1::text IS NULL OR stage = $1)", stage)
    rows = await conn.fetch(
        """
        SELECT event_id, stage, lead_id, tenant_id, origin, original_type, error_type, error,
               attempts, recorded_at
        FROM dead_letters WHERE ($1::text IS NULL OR stage = $1)
        ORDER BY recorded_at DESC, event_id LIMIT $2 OFFSET $3
        """, stage, limit, offset)
    end = offset + len(rows)
    return {"items": [plain_row(r) for r in rows], "total": total, "limit": limit,
            "offset": offset, "next_offset": end if end < total else None}
