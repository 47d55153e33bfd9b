"""The dashboard's picture in one call, shaped like the old cron dashboard so users can switch."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from events import ALL_TENANTS

from ..clock.status import load_jobs_state, scheduler_status
from ..projector.queries.common import Conn, snapshot
from ..projector.queries.leads import funnel_stages, leads_per_day, status_counts
from ..projector.queries.runs import job_metrics, latest_backlogs, recent_runs
from ..projector.queries.status import dead_letter_count, projector_status
from ..runtime.config import PlatformConfig


async def scheduler(conn: Conn, config: PlatformConfig, now: datetime,
                    tenant: str | None = None) -> dict[str, Any]:
    """The seed's scheduler status: overall health and per job schedule, health, next run
    (health of one tenant's runs, or of all)."""
    return scheduler_status(config, now=now,
                            jobs_state=await load_jobs_state(conn, tenant or ALL_TENANTS))


async def dashboard(conn: Conn, config: PlatformConfig, now: datetime, *,
                    days: int = 14, tenant: str | None = None) -> dict[str, Any]:
    """timestamp, scheduler_status, job_metrics, recent_jobs (10), funnel per status and its
    stages, dead-letter count, projector progress, leads per day and each job's backlog, from
    one snapshot; with ``tenant``, that tenant's (the projector and backlogs stay global)."""
    async with snapshot(conn) as db:
        counts = await status_counts(db, tenant=tenant)
        return {
            "timestamp": now.isoformat(),
            "tenant": tenant or ALL_TENANTS,
            "scheduler_status": await scheduler(db, config, now, tenant),
            "job_metrics": await job_metrics(db, tenant_id=tenant or ALL_TENANTS),
            "recent_jobs": await recent_runs(db, 10, tenant=tenant),
            "funnel": counts,
            "funnel_stages": funnel_stages(counts),
            "dead_letter_count": await dead_letter_count(db, tenant=tenant),
            "projector": await projector_status(db),
            "leads_per_day": await leads_per_day(db, until=now.date(), days=days, tenant=tenant),
            "backlog": {job: v["backlog"] for job, v in (await latest_backlogs(db)).items()},
        }
