"""Leads: counts per status, the funnel, a searchable paged list, one lead with its history."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID

from events import LeadStatus

from .common import Conn, like_pattern, plain_row

FUNNEL = (LeadStatus.NEW, LeadStatus.SCORED, LeadStatus.QUALIFIED, LeadStatus.ROUTED,
          LeadStatus.CONTACTED, LeadStatus.REJECTED)

#: The path every lead walks; a lead at a later stage has passed all earlier ones.
#: REJECTED leaves after SCORED, so a rejected lead counts as having reached SCORED.
FUNNEL_PATH = (LeadStatus.NEW, LeadStatus.SCORED, LeadStatus.QUALIFIED, LeadStatus.ROUTED,
               LeadStatus.CONTACTED)
_REACHED_BY: dict[LeadStatus, frozenset[LeadStatus]] = {
    LeadStatus.NEW: frozenset(LeadStatus),
    LeadStatus.SCORED: frozenset(LeadStatus) - {LeadStatus.NEW},
    LeadStatus.QUALIFIED: frozenset({LeadStatus.QUALIFIED, LeadStatus.ROUTED, LeadStatus.CONTACTED}),
    LeadStatus.ROUTED: frozenset({LeadStatus.ROUTED, LeadStatus.CONTACTED}),
    LeadStatus.CONTACTED: frozenset({LeadStatus.CONTACTED}),
}

_LIST_COLUMNS = """lead_id, tenant_id, campaign_id, email, first_name, last_name, title, company,
    domain, industry, employees, country, status, version, score, segment, owner, contact_step,
    last_contacted_at, next_action_at, do_not_contact, created_at, updated_at"""


async def status_counts(conn: Conn, *, tenant: str | None = None) -> dict[str, int]:
    """Leads per current status (every status present, zero when none), of one tenant or all."""
    rows = await conn.fetch(
        "SELECT status, sum(n)::bigint AS n FROM lead_counts "
        "WHERE ($1::text IS NULL OR tenant_id = $1) GROUP BY status", tenant)
    found = {r["status"]: r["n"] for r in rows}
    return {s.value: found.get(s.value, 0) for s in FUNNEL}


def funnel_stages(counts: dict[str, int]) -> list[dict[str, Any]]:
    """NEW -> CONTACTED: leads that reached each stage, and conversion from the previous stage
    and from NEW (percent, 2 decimals; None when the base is zero)."""
    stages: list[dict[str, Any]] = []
    first = previous = None
    for status in FUNNEL_PATH:
        reached = sum(counts.get(s.value, 0) for s in _REACHED_BY[status])
        stages.append({
            "status": status.value, "reached": reached, "current": counts.get(status.value, 0),
            "conversion_pct": _pct(reached, previous), "overall_pct": _pct(reached, first),
        })
        first = reached if first is None else first
        previous = reached
    return stages


def _pct(part: int, whole: int | None) -> float | None:
    if whole is None:
        return 100.0 if part else None
    return round(part / whole * 100, 2) if whole else None


async def leads_per_day(conn: Conn, *, until: date, days: int = 14,
                        tenant: str | None = None) -> list[dict[str, Any]]:
    """Per UTC day, the leads entering each status ('CONTACTED' counts every step sent), of
    one tenant or all; every day of the window present, oldest first."""
    since = until - timedelta(days=days - 1)
    rows = await conn.fetch(
        """
        SELECT day, metric, sum(count)::bigint AS n FROM pipeline_daily
        WHERE day BETWEEN $1 AND $2 AND ($3::text IS NULL OR tenant_id = $3)
        GROUP BY day, metric
        """, since, until, tenant)
    series: dict[date, dict[str, int]] = {since + timedelta(days=i): {} for i in range(days)}
    for r in rows:
        kind, _, name = r["metric"].partition(":")
        if kind == "entered":
            series[r["day"]][name] = r["n"]
    return [{"day": day.isoformat(),
             "entered": {s.value: counts.get(s.value, 0) for s in FUNNEL}}
            for day, counts in series.items()]


async def leads_page(conn: Conn, *, status: str | None = None, campaign: str | None = None,
                     q: str | None = None, limit: int = 50, offset: int = 0,
                     tenant: str | None = None) -> dict[str, Any]:
    """Leads, most recently changed first, filtered by status, tenant, campaign and a search
    of email or company (case-insensitive substring)."""
    pattern = like_pattern(q.strip()) if q and q.strip() else None
    where = """($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR campaign_id = $2)
        AND ($3::text IS NULL OR email ILIKE $3 ESCAPE '\\' OR company ILIKE $3 ESCAPE '\\')
        AND ($4::text IS NULL OR tenant_id = $4)"""
    if pattern is None:  # counted per status already: no scan of the table for the total
        total = await conn.fetchval(
            """
            SELECT coalesce(sum(n), 0)::bigint FROM lead_counts
            WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR campaign_id = $2)
              AND ($3::text IS NULL OR tenant_id = $3)
            """, status, campaign, tenant)
    else:
        total = await conn.fetchval(f"SELECT count(*) FROM leads WHERE {where}",  # noqa: S608
                                    status, campaign, pattern, tenant)
    rows = await conn.fetch(
        f"""
        SELECT {_LIST_COLUMNS} FROM leads WHERE {where}
        ORDER BY updated_at DESC, lead_id LIMIT $5 OFFSET $6
        """,  # noqa: S608 - constant fragments; values are bound
        status, campaign, pattern, tenant, limit, offset)
    end = offset + len(rows)
    return {"items": [plain_row(r) for r in rows], "total": total, "limit": limit,
            "offset": offset, "next_offset": end if end < total else None}


async def lead_detail(conn: Conn, lead_id: UUID) -> dict[str, Any] | None:
    """A lead's snapshot and every event of its history in order, or None if unknown."""
    row = await conn.fetchrow("SELECT * FROM leads WHERE lead_id = $1", lead_id)
    if row is None:
        return None
    events = await conn.fetch(
        """
        SELECT event_id, type, version, status, occurred_at, recorded_at, correlation_id,
               causation_id, replay_id, topic, partition, "offset", payload
        FROM lead_events WHERE lead_id = $1 ORDER BY version, recorded_at, "offset"
        """, lead_id)
    return {"lead": plain_row(row), "events": [plain_row(e) for e in events]}


async def campaigns(conn: Conn) -> list[dict[str, Any]]:
    """Campaigns that have leads, with their lead count per status."""
    rows = await conn.fetch(
        """
        SELECT campaign_id, tenant_id, status, n FROM lead_counts
        ORDER BY campaign_id, tenant_id
        """)
    found: dict[tuple[str, str], dict[str, int]] = {}
    for r in rows:
        found.setdefault((r["campaign_id"], r["tenant_id"]), {})[r["status"]] = r["n"]
    return [{"campaign_id": campaign, "tenant_id": tenant, "leads": sum(counts.values()),
             "by_status": {s.value: counts.get(s.value, 0) for s in FUNNEL}}
            for (campaign, tenant), counts in found.items()]


async def lead_event_count(conn: Conn) -> int:
    """Lead events folded so far."""
    count: int = await conn.fetchval("SELECT count(*) FROM lead_events")
    return count
