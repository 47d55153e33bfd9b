"""`leadflow import FILE`: a manual harvest of one file, with a progress bar and bad rows by line."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from events import (
    JobCompleted,
    JobName,
    JobPartFields,
    JobStarted,
    RunCounts,
    RunInfo,
    TickSource,
    utcnow,
)
from events.ids import job_event_id

from ..harvest.config import HarvestSource
from ..harvest.executor import Harvester
from ..harvest.normalize import RowError
from ..pipeline.settings import Settings
from ..runtime.bus import Publisher, make_broker
from ..runtime.db import create_pool
from ..runtime.logging import redact


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


async def import_source(settings: Settings, path: Path, *, tenant: str, campaign: str,
                        requested_by: str, console: Console) -> int:
    """Import ``path``; report it as a manual harvest run. Returns the number of bad rows."""
    source = HarvestSource(path=path, tenant=tenant, campaign=campaign)
    pool = await create_pool(settings.database_url)
    broker = make_broker(settings.kafka_bootstrap_servers, client_id="leadflow-import")
    await broker.start()
    publisher = Publisher(broker, settings.pipeline.topics)
    run_id, started = uuid.uuid4(), utcnow()
    info = RunInfo(scheduled_for=started, source=TickSource.MANUAL, requested_by=requested_by)
    common = JobPartFields(occurred_at=started, tenant_id=tenant, correlation_id=run_id,
                           causation_id=run_id, run_id=run_id, job=JobName.HARVEST, part="import",
                           run=info)
    try:
        await publisher.publish_one(JobStarted(event_id=job_event_id(run_id, "import", "started"),
                                               recorded_at=started, started_at=started, **common))
        lines = await asyncio.to_thread(count_lines, path)
        total = max(0, lines - (1 if source.resolved_format() == "csv" else 0))
        with Progress(TextColumn("[bold]importing[/] {task.description}"), BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task(path.name, total=total)
            report = await Harvester(pool, publisher).harvest(
                source, at=started, run_id=run_id, budget=None,
                progress=lambda n: progress.advance(task, n))
        done = utcnow()
        counts = RunCounts(leads_processed=report.created + report.new_bad_rows,
                           leads_succeeded=report.created, leads_failed=report.new_bad_rows)
        await publisher.publish_one(JobCompleted(
            event_id=job_event_id(run_id, "import", "completed"), recorded_at=done,
            started_at=started, completed_at=done,
            duration_seconds=(done - started).total_seconds(), counts=counts, **common))
    finally:
        await broker.stop()
        await pool.close()
    console.print(f"{report.created} new lead(s) published to leads.new; "
                  f"{report.already_known} already known")
    if report.bad_rows:
        console.print(_by_line(report.bad_rows, "reason", f"{len(report.bad_rows)} bad row(s) in "
                               f"{path.name} (sent to leads.dlq; the other rows went through)"))
    if report.warnings:
        console.print(_by_line(report.warnings, "warning", f"{len(report.warnings)} row(s) of "
                               f"{path.name} imported with a value recorded as unknown"))
    return len(report.bad_rows)


def _by_line(rows: list[RowError], column: str, title: str) -> Table:
    table = Table("line", column, title=title)
    for row in rows:
        table.add_row(str(row.line), redact(row.reason))
    return table
