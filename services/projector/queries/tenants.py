"""Tenants at a glance: each tenant's health over the pipeline jobs and its leads."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from events import ALL_TENANTS, Health, LeadStatus

from ..rows import MetricsRow
from .common import Conn
from .runs import PIPELINE_JOBS


async def tenants_overview(conn: Conn, configured: Collection[str],
                           own_topics: Collection[str]) -> list[dict[str, Any]]:
    """Every tenant the config names or the read models hold, by id: its health (the worst of
    its jobs'), each job's metrics summary, and the leads it has imported."""
    metrics: dict[str, dict[str, MetricsRow]] = {}
    for r in await conn.fetch("SELECT * FROM job_metrics WHERE tenant_id <> $1", ALL_TENANTS):
        metrics.setdefault(r["tenant_id"], {})[r["job"]] = MetricsRow.from_row(r)
    imported = {r["tenant_id"]: r["n"] for r in await conn.fetch(
        "SELECT tenant_id, sum(count)::bigint AS n FROM pipeline_daily WHERE metric = $1 "
        "GROUP BY tenant_id", f"entered:{LeadStatus.NEW.value}")}
    names = sorted(set(configured) | set(metrics) | set(imported))
    return [tenant_summary(t, metrics.get(t, {}), imported.get(t, 0), configured=t in configured,
                           own_topics=t in own_topics) for t in names]


def tenant_summary(tenant: str, metrics: dict[str, MetricsRow], leads: int, *,
                   configured: bool, own_topics: bool) -> dict[str, Any]:
    """One tenant's line: worst health of the jobs that ran for it, and per job a summary."""
    jobs = {job: {"health_status": m.health_status.value, "total_runs": m.total_runs,
                  "failed_runs": m.failed_runs, "consecutive_failures": m.consecutive_failures,
                  "total_leads_processed": m.total_leads_processed,
                  "total_leads_failed": m.total_leads_failed,
                  "last_run_at": m.last_run_at.isoformat() if m.last_run_at else None}
            for job in (*PIPELINE_JOBS, *sorted(set(metrics) - set(PIPELINE_JOBS)))
            if (m := metrics.get(job)) is not None}
    worst = max((m.health_status for m in metrics.values()), key=lambda h: h.severity,
                default=Health.HEALTHY)
    return {"tenant_id": tenant, "configured": configured, "own_topics": own_topics,
            "health": worst.value, "leads": leads, "jobs": jobs}
