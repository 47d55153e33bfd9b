"""The per-day pipeline report: leads entering each stage, rejections by reason, conversions."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from events import LeadStatus

from ..fold import FIRST_CONTACT, entered
from .common import Conn

#: Stage pairs whose daily flows give a conversion ratio (to / from, in percent).
CONVERSIONS: tuple[tuple[str, str, str], ...] = (
    ("scored", entered(LeadStatus.NEW), entered(LeadStatus.SCORED)),
    ("qualified", entered(LeadStatus.SCORED), entered(LeadStatus.QUALIFIED)),
    ("routed", entered(LeadStatus.QUALIFIED), entered(LeadStatus.ROUTED)),
    ("contacted", entered(LeadStatus.ROUTED), FIRST_CONTACT),
)


def conversions(metrics: dict[str, int]) -> dict[str, float | None]:
    """Per stage, the leads entering it that day over those entering the stage before (%).

    Flows of one day, not a cohort: a lead created on Monday and scored on Tuesday counts on
    each day it moved. None when the earlier stage saw no lead that day."""
    out: dict[str, float | None] = {}
    for name, before, after in CONVERSIONS:
        base = metrics.get(before, 0)
        out[name] = round(metrics.get(after, 0) / base * 100, 2) if base else None
    return out


def report_row(day: date, tenant: str, campaign: str, metrics: dict[str, int]) -> dict[str, Any]:
    """One day of one campaign: entered per status, rejections per reason, conversions."""
    per_status = {s.value: metrics.get(entered(s), 0) for s in LeadStatus}
    rejected = {m.partition(":")[2]: n for m, n in sorted(metrics.items())
                if m.startswith("rejected:")}
    return {"day": day.isoformat(), "tenant_id": tenant, "campaign_id": campaign,
            "entered": per_status, "first_contacts": metrics.get(FIRST_CONTACT, 0),
            "rejected": rejected, "conversion_pct": conversions(metrics)}


async def pipeline_report(conn: Conn, *, since: date, until: date, tenant: str | None = None,
                          campaign: str | None = None) -> list[dict[str, Any]]:
    """Rows of pipeline_daily between ``since`` and ``until`` (inclusive), newest day first."""
    rows = await conn.fetch(
        """
        SELECT day, tenant_id, campaign_id, metric, count FROM pipeline_daily
        WHERE day BETWEEN $1 AND $2
          AND ($3::text IS NULL OR tenant_id = $3) AND ($4::text IS NULL OR campaign_id = $4)
        """, since, until, tenant, campaign)
    grouped: dict[tuple[date, str, str], dict[str, int]] = defaultdict(dict)
    for r in rows:
        grouped[(r["day"], r["tenant_id"], r["campaign_id"])][r["metric"]] = r["count"]
    keys = sorted(grouped, key=lambda k: (-k[0].toordinal(), k[1], k[2]))
    return [report_row(day, tenant_id, campaign_id, grouped[(day, tenant_id, campaign_id)])
            for day, tenant_id, campaign_id in keys]
