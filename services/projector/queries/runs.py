"""Runs and job metrics: the seed dashboard's recent_jobs and job_metrics, and paged run lists."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from events import PIPELINE
from events.runs import share, status_for

from ..rows import MetricsRow
from .common import Conn, iso

_RUN_COLUMNS = """run_id, job, tenant_id, campaign_id, status, source, scheduled_for, requested_by,
    retry_of, attempt, max_leads, started_at, completed_at, duration_seconds, leads_processed,
    leads_succeeded, leads_failed, parts, partitions_total, partitions_covered, backlog, reason,
    error, recorded_at, skipped_ticks, cap, leads_by_tenant, failed_by_tenant, failed_tenants,
    coalesce(started_at, recorded_at) AS sort_key"""

#: A run "is for" tenant $N when scoped to it, or when it took or failed its leads or failed
#: for it (a NULL tenant: every run).
_FOR_TENANT = """($%(n)s::text IS NULL OR tenant_id = $%(n)s OR leads_by_tenant ? $%(n)s
    OR failed_by_tenant ? $%(n)s OR failed_tenants ? $%(n)s)"""


def for_tenant(n: int) -> str:
    """The SQL condition that a run is for the tenant bound as parameter ``n``."""
    return _FOR_TENANT % {"n": n}

_MIN_UUID = UUID(int=0)

#: Every pipeline job's name, in order.
PIPELINE_JOBS = tuple(job.value for job in PIPELINE)


async def recent_runs(conn: Conn, limit: int = 10, *,
                      tenant: str | None = None) -> list[dict[str, Any]]:
    """The latest runs, newest first, in the seed dashboard's recent_jobs shape (with
    ``tenant``: the runs for that tenant, each as it saw it)."""
    rows = await conn.fetch(
        f"""
        SELECT run_id, job, status, source, scheduled_for, started_at, completed_at,
               duration_seconds, leads_processed, leads_succeeded, leads_failed, error, reason,
               tenant_id, leads_by_tenant, failed_by_tenant, failed_tenants
        FROM job_runs WHERE {for_tenant(2)}
        ORDER BY coalesce(started_at, recorded_at) DESC, run_id LIMIT $1
        """, limit, tenant)  # noqa: S608 - a constant condition; values are bound
    return [
        {
            "run_id": str(r["run_id"]), "job_type": r["job"], "status": r["status"],
            "source": r["source"],
            "scheduled_for": iso(r["scheduled_for"]), "started_at": iso(r["started_at"]),
            "completed_at": iso(r["completed_at"]), "duration_seconds": r["duration_seconds"],
            "leads_processed": r["leads_processed"], "leads_succeeded": r["leads_succeeded"],
            "leads_failed": r["leads_failed"], "error": r["error"],
            **seen_by(r, tenant),
        }
        for r in rows
    ]


def seen_by(r: Any, tenant: str | None) -> dict[str, Any]:
    """For a run over every tenant listed for ``tenant``: the status and lead counts as that
    tenant saw them (its leads only; failed only if the failure was everyone's or its own).
    Nothing to change for a run scoped to the tenant, or without a tenant."""
    if tenant is None or r["tenant_id"] == tenant:
        return {}
    return share(r["status"], r["leads_by_tenant"], r["failed_by_tenant"], r["failed_tenants"],
                 tenant)


@dataclass(frozen=True, slots=True)
class RunCursor:
    """Position in a job's run list: runs strictly older than (sort_key, run_id) come next."""

    sort_key: datetime
    run_id: UUID = _MIN_UUID

    def encode(self) -> str:
        return f"{self.sort_key.isoformat()}~{self.run_id}"

    @classmethod
    def parse(cls, text: str) -> RunCursor:
        """A cursor from ``next_before``, or a plain ISO time (runs started before it).

        Raises ValueError saying what a valid value looks like.
        """
        stamp, _, run = text.strip().partition("~")
        if stamp[-6:-5] == " ":  # a '+hh:mm' offset whose '+' a query string turned into a space
            stamp = f"{stamp[:-6]}+{stamp[-5:]}"
        try:
            at = datetime.fromisoformat(stamp)
            run_id = UUID(run) if run else _MIN_UUID
        except ValueError:
            raise ValueError(f"before={text!r} is neither an ISO 8601 time (e.g. "
                             "2026-11-20T09:00:00+00:00) nor a next_before value from a "
                             "previous page") from None
        if at.tzinfo is None:
            raise ValueError(f"before={text!r} needs a UTC offset, e.g. 2026-11-20T09:00:00+00:00")
        return cls(at, run_id)


async def runs_page(conn: Conn, job: str, *, limit: int = 20,
                    before: RunCursor | None = None, tenant: str | None = None) -> dict[str, Any]:
    """One page of ``job``'s runs, newest first, with the cursor of the next page; with
    ``tenant``, only the runs for that tenant or that took its leads, each with the status and
    counts it had for that tenant (the manifest fields stay the whole run's)."""
    rows = await conn.fetch(
        f"""
        SELECT {_RUN_COLUMNS} FROM job_runs
        WHERE job = $1
          AND ($2::timestamptz IS NULL OR (coalesce(started_at, recorded_at), run_id) < ($2, $3))
          AND {for_tenant(5)}
        ORDER BY coalesce(started_at, recorded_at) DESC, run_id DESC
        LIMIT $4
        """,  # noqa: S608 - constant columns and condition; values are bound
        job, before.sort_key if before else None, before.run_id if before else _MIN_UUID,
        limit + 1, tenant)
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    return {
        "job": job,
        "items": [{**run_dict(r), **seen_by(r, tenant)} for r in rows],
        "limit": limit,
        "next_before": RunCursor(last["sort_key"], last["run_id"]).encode() if more and last else None,
    }


def run_dict(r: Any) -> dict[str, Any]:
    """A run row in the recent_jobs shape plus its scope, origin and coverage."""
    return {
        "run_id": str(r["run_id"]), "job_type": r["job"], "status": r["status"],
        "source": r["source"], "tenant_id": r["tenant_id"], "campaign_id": r["campaign_id"],
        "requested_by": r["requested_by"], "max_leads": r["max_leads"],
        "attempt": r["attempt"], "retry_of": str(r["retry_of"]) if r["retry_of"] else None,
        "scheduled_for": iso(r["scheduled_for"]), "started_at": iso(r["started_at"]),
        "completed_at": iso(r["completed_at"]), "duration_seconds": r["duration_seconds"],
        "leads_processed": r["leads_processed"], "leads_succeeded": r["leads_succeeded"],
        "leads_failed": r["leads_failed"], "parts": r["parts"],
        "partitions_total": r["partitions_total"], "partitions_covered": r["partitions_covered"],
        "backlog": r["backlog"], "reason": r["reason"], "error": r["error"],
        "skipped_ticks": r["skipped_ticks"], "cap": r["cap"],
        "leads_by_tenant": r["leads_by_tenant"], "failed_by_tenant": r["failed_by_tenant"],
        "failed_tenants": r["failed_tenants"],
    }


async def run_manifest(conn: Conn, run_id: UUID) -> dict[str, Any] | None:
    """What a run was for, the cap it applied and the leads it took per tenant, in all and
    per part (instance); None for an unknown run."""
    run = await conn.fetchrow(
        """
        SELECT run_id, job, status, tenant_id, campaign_id, source, scheduled_for, cap,
               leads_processed, leads_by_tenant, failed_by_tenant, failed_tenants
        FROM job_runs WHERE run_id = $1
        """, run_id)
    if run is None:
        return None
    parts = await conn.fetch(
        """
        SELECT part, status, cap, leads_processed, leads_by_tenant, failed_by_tenant,
               failed_tenants, partitions, partitions_total
        FROM job_run_parts WHERE run_id = $1 ORDER BY part
        """, run_id)
    return {
        "run_id": str(run["run_id"]), "job": run["job"], "status": run["status"],
        "tenant_id": run["tenant_id"], "campaign_id": run["campaign_id"],
        "source": run["source"], "scheduled_for": iso(run["scheduled_for"]), "cap": run["cap"],
        "leads_processed": run["leads_processed"], "leads_by_tenant": run["leads_by_tenant"],
        "failed_by_tenant": run["failed_by_tenant"], "failed_tenants": run["failed_tenants"],
        "parts": [dict(p) for p in parts],
    }


def manifest_csv(manifest: dict[str, Any]) -> str:
    """A manifest as CSV: one line per tenant the run touched, with its leads taken and
    failed and the run's status as that tenant sees it."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run_id", "job", "scheduled_for", "scope_tenant", "scope_campaign", "cap",
                     "tenant_id", "leads", "leads_failed", "status"])
    taken, failed = manifest["leads_by_tenant"], manifest.get("failed_by_tenant", {})
    failed_for = manifest.get("failed_tenants", [])
    for tenant in sorted({*taken, *failed, *failed_for}):
        writer.writerow([manifest["run_id"], manifest["job"], manifest["scheduled_for"],
                         manifest["tenant_id"], manifest["campaign_id"] or "",
                         "" if manifest["cap"] is None else manifest["cap"], tenant,
                         taken.get(tenant, 0), failed.get(tenant, 0),
                         status_for(manifest["status"], failed_for, tenant)])
    return out.getvalue()


async def job_metrics(conn: Conn, *, tenant_id: str = "*",
                      jobs: tuple[str, ...] = PIPELINE_JOBS,
                      ) -> dict[str, dict[str, Any]]:
    """CronMetrics per job (every job in ``jobs`` present, zeros when it never ran)."""
    rows = await conn.fetch("SELECT * FROM job_metrics WHERE tenant_id = $1", tenant_id)
    found = {r["job"]: MetricsRow.from_row(r) for r in rows}
    names = list(jobs) + sorted(set(found) - set(jobs))
    return {job: (found.get(job) or MetricsRow(job=job, tenant_id=tenant_id)).as_dict()
            for job in names}


async def one_job_metrics(conn: Conn, job: str, *, tenant_id: str = "*") -> dict[str, Any]:
    """CronMetrics of one job (zeros when it never ran)."""
    row = await conn.fetchrow("SELECT * FROM job_metrics WHERE job = $1 AND tenant_id = $2",
                              job, tenant_id)
    metrics = MetricsRow.from_row(row) if row else MetricsRow(job=job, tenant_id=tenant_id)
    return {"job": job, "tenant_id": tenant_id, **metrics.as_dict()}


async def latest_runs_by_job(conn: Conn) -> dict[str, dict[str, Any]]:
    """Each job's newest run (any source)."""
    rows = await conn.fetch(
        f"""
        SELECT DISTINCT ON (job) {_RUN_COLUMNS} FROM job_runs
        ORDER BY job, coalesce(started_at, recorded_at) DESC, run_id DESC
        """)  # noqa: S608 - a constant column list
    return {r["job"]: run_dict(r) for r in rows}


async def latest_backlogs(conn: Conn) -> dict[str, dict[str, Any]]:
    """Per job: the backlog its newest finished run reported (leads waiting in its input when
    the run ended), and the rate per part of its newest run that processed leads."""
    rows = await conn.fetch(
        """
        WITH backlog AS (
            SELECT DISTINCT ON (job) job, backlog, completed_at, max_leads FROM job_runs
            WHERE backlog IS NOT NULL AND status IN ('completed', 'failed')
            ORDER BY job, completed_at DESC NULLS LAST, run_id DESC
        ), rate AS (
            SELECT DISTINCT ON (job) job, leads_processed / duration_seconds / greatest(parts, 1)
                   AS rate_per_part FROM job_runs
            WHERE status = 'completed' AND leads_processed > 0 AND duration_seconds > 0
            ORDER BY job, completed_at DESC NULLS LAST, run_id DESC
        )
        SELECT b.job, b.backlog, b.completed_at, b.max_leads, r.rate_per_part
        FROM backlog b LEFT JOIN rate r USING (job)
        """)
    return {r["job"]: {"backlog": r["backlog"], "at": iso(r["completed_at"]),
                       "max_leads": r["max_leads"], "rate_per_part": r["rate_per_part"]}
            for r in rows}


async def finished_runs(conn: Conn, run_ids: Sequence[UUID]) -> int:
    """How many of these runs have ended (completed, failed or skipped)."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM job_runs WHERE run_id = ANY($1::uuid[]) AND status <> 'running'",
        list(run_ids))
    return count
