"""The run read models as other packages read them on their own connections (the clock's
reaper, status and backfill), hence schema-qualified: they do not set a search_path."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from events import ALL_TENANTS
from events.runs import PartRow, RunRow

from ..rows import MetricsRow
from .common import Conn


async def running_runs_without_cover(conn: Conn, quiet_for: timedelta) -> list[RunRow]:
    """Running runs with input partitions nobody covered, whose parts all ended (or never
    started) over ``quiet_for`` ago; oldest first, at most 100."""
    rows = await conn.fetch(
        """
        SELECT r.* FROM leadflow_read.job_runs r
        WHERE r.status = 'running' AND r.partitions_covered < r.partitions_total
          AND NOT EXISTS (
              SELECT 1 FROM leadflow_read.job_run_parts p
              WHERE p.run_id = r.run_id
                AND (p.status = 'running' OR p.completed_at >= now() - $1::interval))
        ORDER BY r.recorded_at
        LIMIT 100
        """, quiet_for)
    return [RunRow.from_row(r) for r in rows]


async def running_parts_of_silent_instances(conn: Conn, silent_for: timedelta) -> list[Any]:
    """(run_id, part, last_seen) of running parts whose instance (stage_instances) has not
    checked in for ``silent_for``, started over ``silent_for`` ago; oldest first, at most 100."""
    rows: list[Any] = await conn.fetch(
        """
        SELECT p.run_id, p.part, s.last_seen
        FROM leadflow_read.job_run_parts p
        JOIN stage_instances s ON s.job = p.job AND s.instance_id = p.part
        WHERE p.status = 'running' AND s.last_seen < now() - $1::interval
          AND p.started_at < now() - $1::interval
        ORDER BY p.started_at
        LIMIT 100
        """, silent_for)
    return rows


async def runs_by_id(conn: Conn, run_ids: Sequence[UUID]) -> dict[UUID, RunRow]:
    return {r["run_id"]: RunRow.from_row(r) for r in await conn.fetch(
        "SELECT * FROM leadflow_read.job_runs WHERE run_id = ANY($1::uuid[])", list(run_ids))}


async def parts_by_run(conn: Conn, run_ids: Sequence[UUID]) -> dict[UUID, list[PartRow]]:
    parts: dict[UUID, list[PartRow]] = {}
    for r in await conn.fetch(
            "SELECT * FROM leadflow_read.job_run_parts WHERE run_id = ANY($1::uuid[])",
            list(run_ids)):
        parts.setdefault(r["run_id"], []).append(PartRow.from_row(r))
    return parts


async def metrics_of_tenant(conn: Conn, tenant_id: str = ALL_TENANTS) -> list[MetricsRow]:
    """Each job's metrics for one tenant (default '*': over every tenant)."""
    return [MetricsRow.from_row(r) for r in await conn.fetch(
        "SELECT * FROM leadflow_read.job_metrics WHERE tenant_id = $1", tenant_id)]


async def run_statuses(conn: Conn, job: str, instants: Sequence[datetime]) -> dict[datetime, str]:
    """Per scheduled instant: 'completed' if a run of it completed, else 'failed' if one failed."""
    rows = await conn.fetch(
        """
        SELECT scheduled_for, bool_or(status = 'completed') AS completed
        FROM leadflow_read.job_runs
        WHERE job = $1 AND scheduled_for = ANY($2::timestamptz[])
          AND status IN ('completed', 'failed')
        GROUP BY scheduled_for
        """, job, list(instants))
    return {r["scheduled_for"]: "completed" if r["completed"] else "failed" for r in rows}
