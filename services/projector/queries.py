"""Read-side queries over the read models (used by the CLI and the dashboard)."""

from __future__ import annotations

from typing import Any

import asyncpg

from events import LeadStatus

FUNNEL = (LeadStatus.NEW, LeadStatus.SCORED, LeadStatus.QUALIFIED, LeadStatus.ROUTED,
          LeadStatus.CONTACTED, LeadStatus.REJECTED)


async def status_counts(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, int]:
    """Leads per current status (every status present, zero when none)."""
    rows = await conn.fetch("SELECT status, count(*) AS n FROM leads GROUP BY status")
    found = {r["status"]: r["n"] for r in rows}
    return {s.value: found.get(s.value, 0) for s in FUNNEL}


async def recent_runs(conn: asyncpg.Connection | asyncpg.Pool, limit: int = 10) -> list[dict[str, Any]]:
    """The latest runs, newest first, in the seed dashboard's recent_jobs shape."""
    rows = await conn.fetch(
        """
        SELECT run_id, job, status, source, scheduled_for, started_at, completed_at,
               duration_seconds, leads_processed, leads_succeeded, leads_failed, error, reason
        FROM job_runs ORDER BY coalesce(started_at, recorded_at) DESC, run_id LIMIT $1
        """, limit)
    return [
        {
            "run_id": str(r["run_id"]), "job_type": r["job"], "status": r["status"],
            "source": r["source"],
            "scheduled_for": _iso(r["scheduled_for"]), "started_at": _iso(r["started_at"]),
            "completed_at": _iso(r["completed_at"]), "duration_seconds": r["duration_seconds"],
            "leads_processed": r["leads_processed"], "leads_succeeded": r["leads_succeeded"],
            "leads_failed": r["leads_failed"], "error": r["error"],
        }
        for r in rows
    ]


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
