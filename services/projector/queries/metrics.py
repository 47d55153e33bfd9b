"""Numbers behind /metrics, read in one pass: runs, leads per stage, durations, lag, letters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from events import ALL_TENANTS, TickSource

from ..rows import MetricsRow
from .common import Conn
from .leads import status_counts
from .status import projector_status

#: Upper bounds (seconds) of the run duration histogram: sub-second streaming runs to hour-long
#: nightly ones.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0)

#: Tick sources the clock emits by itself (manual and backfill ticks come from people).
CLOCK_SOURCES = (TickSource.SCHEDULE.value, TickSource.CATCHUP.value, TickSource.RETRY.value)


@dataclass(frozen=True, slots=True)
class DurationHistogram:
    buckets: dict[float, int]  # upper bound -> runs at or below it (cumulative)
    count: int
    total: float


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    job_metrics: dict[str, MetricsRow] = field(default_factory=dict)
    #: (job, tenant) -> that tenant's metrics (its scoped runs and its share of the others).
    tenant_metrics: dict[tuple[str, str], MetricsRow] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)
    durations: dict[str, DurationHistogram] = field(default_factory=dict)
    leads_by_status: dict[str, int] = field(default_factory=dict)
    dead_letters_by_stage: dict[str, int] = field(default_factory=dict)
    last_clock_tick: dict[str, datetime] = field(default_factory=dict)
    projector: dict[str, Any] = field(default_factory=dict)


async def metrics_snapshot(conn: Conn) -> MetricsSnapshot:
    """Everything /metrics exposes (durations from the runs retention still keeps)."""
    metrics: dict[str, MetricsRow] = {}
    per_tenant: dict[tuple[str, str], MetricsRow] = {}
    for r in await conn.fetch("SELECT * FROM job_metrics"):
        row = MetricsRow.from_row(r)
        if row.tenant_id == ALL_TENANTS:
            metrics[row.job] = row
        else:
            per_tenant[(row.job, row.tenant_id)] = row
    running = {r["job"]: r["n"] for r in await conn.fetch(
        "SELECT job, count(*) AS n FROM job_runs WHERE status = 'running' GROUP BY job")}
    bucket_rows = await conn.fetch(
        """
        SELECT r.job, b.le, count(*) FILTER (WHERE r.duration_seconds <= b.le) AS n
        FROM job_runs r CROSS JOIN unnest($1::float8[]) AS b(le)
        WHERE r.duration_seconds IS NOT NULL GROUP BY r.job, b.le
        """, list(DURATION_BUCKETS))
    totals = await conn.fetch(
        """
        SELECT job, count(*) AS n, sum(duration_seconds) AS total FROM job_runs
        WHERE duration_seconds IS NOT NULL GROUP BY job
        """)
    buckets: dict[str, dict[float, int]] = {}
    for r in bucket_rows:
        buckets.setdefault(r["job"], {})[r["le"]] = r["n"]
    durations = {r["job"]: DurationHistogram(buckets=dict(sorted(buckets.get(r["job"], {}).items())),
                                             count=r["n"], total=r["total"] or 0.0)
                 for r in totals}
    letters = {r["stage"]: r["n"] for r in await conn.fetch(
        "SELECT coalesce(stage, 'none') AS stage, count(*) AS n FROM dead_letters GROUP BY 1")}
    ticks = {r["job"]: r["at"] for r in await conn.fetch(
        """
        SELECT job, max(scheduled_for) AS at FROM job_runs
        WHERE source = ANY($1::text[]) GROUP BY job
        """, list(CLOCK_SOURCES))}
    return MetricsSnapshot(job_metrics=metrics, tenant_metrics=per_tenant, running=running,
                           durations=durations,
                           leads_by_status=await status_counts(conn),
                           dead_letters_by_stage=letters, last_clock_tick=ticks,
                           projector=await projector_status(conn))
