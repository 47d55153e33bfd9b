"""Harvest runs: read the configured sources, emit LeadCreated for leads never seen, report bad
rows by line to leads.dlq. One instance harvests at a time (a Postgres advisory lock)."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from uuid import UUID

import asyncpg

from events import ALL_TENANTS, DeadLettered, JobName, Lead, LeadCreated, RunCounts, utcnow
from events.ids import event_id

from ..runtime.budget import RunBudget
from ..runtime.bus import Publisher
from ..runtime.locks import AdvisoryLock, advisory_key
from ..runtime.logging import redact
from ..runtime.runs import RunContext, RunResult
from . import seen
from .config import HarvestSource
from .normalize import RowError, lead_created, read_lead
from .sources import SourceRow, read_rows

log = logging.getLogger(__name__)

CHUNK = 500


@dataclass(slots=True)
class SourceReport:
    """What one pass over a source did, for the run's counts and the import command."""

    source: str
    created: int = 0
    already_known: int = 0
    bad_rows: list[RowError] = field(default_factory=list)
    #: Rows that became leads with a value recorded as unknown (reported once, with the lead).
    warnings: list[RowError] = field(default_factory=list)
    new_bad_rows: int = 0
    exhausted_budget: bool = False
    #: The service began to stop before the source was read to its end.
    stopped: bool = False


def bad_row_dead_letter(error: RowError, tenant_id: str, run_id: UUID | None) -> DeadLettered:
    """leads.dlq event for an unreadable source row (the id depends on file, line and content)."""
    now = utcnow()
    return DeadLettered(
        event_id=event_id(f"{error.source}:{error.line}:{seen.row_hash(error)}", "dead-lettered"),
        occurred_at=now, recorded_at=now, tenant_id=tenant_id, correlation_id=run_id,
        stage=JobName.HARVEST, source_file=error.source, line=error.line,
        original=base64.b64encode(error.raw.encode()).decode("ascii"),
        error_type="InvalidRow", error=error.reason,
    )


@dataclass(slots=True)
class SplitChunk:
    """A chunk normalised: leads in order with their lines, bad rows, and rows kept with a
    warning (a value not understood and recorded as unknown)."""

    leads: list[Lead] = field(default_factory=list)
    lines: list[tuple[Lead, int]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)


def split_rows(rows: Iterable[SourceRow | RowError], source: HarvestSource,
               at: datetime) -> SplitChunk:
    """Normalise a chunk of rows. Pure."""
    out = SplitChunk()
    for row in rows:
        if isinstance(row, RowError):
            out.errors.append(row)
            continue
        try:
            lead, warnings = read_lead(row.fields, tenant_id=source.tenant,
                                       campaign_id=source.campaign, source=row.source, at=at)
        except ValueError as exc:
            out.errors.append(RowError(row.source, row.line, str(exc), row.raw))
            continue
        out.leads.append(lead)
        out.lines.append((lead, row.line))
        out.warnings += [RowError(row.source, row.line, w, row.raw) for w in warnings]
    return out


def _chunks(rows: Iterator[SourceRow | RowError], size: int) -> Iterator[list[SourceRow | RowError]]:
    while chunk := list(islice(rows, size)):
        yield chunk


class Harvester:
    """Moves rows of one source into leads.new, skipping leads already emitted."""

    def __init__(self, pool: asyncpg.Pool, publisher: Publisher) -> None:
        self.pool = pool
        self.publisher = publisher

    async def harvest(self, source: HarvestSource, *, at: datetime, run_id: UUID | None,
                      budget: RunBudget | None, deadline: float | None = None,
                      progress: Callable[[int], None] | None = None,
                      stop: asyncio.Event | None = None) -> SourceReport:
        """Emit the source's new leads (at most the budget) and report its new bad rows."""
        report = SourceReport(source=str(source.path))
        rows = read_rows(source.path, source.resolved_format())
        for chunk in _chunks(rows, CHUNK):
            split = split_rows(chunk, source, at)
            leads, lines, errors = split.leads, split.lines, split.errors
            report.bad_rows.extend(errors)
            fresh_ids = await seen.unseen(self.pool, [lead.lead_id for lead in leads])
            fresh: dict[UUID, tuple[Lead, int]] = {}
            for lead, line in lines:  # the same email twice in a file is one lead: keep the first
                if lead.lead_id in fresh_ids and lead.lead_id not in fresh:
                    fresh[lead.lead_id] = (lead, line)
            report.already_known += len(leads) - len(fresh)
            take = list(fresh.values())
            if budget is not None:
                granted = await budget.claim(len(take))
                if granted < len(take):
                    take, report.exhausted_budget = take[:granted], True
            new_errors = await seen.unreported(self.pool, errors)
            taken = {line for _, line in take}
            for warning in split.warnings:  # only rows that become leads now: once per row
                if warning.line in taken:
                    report.warnings.append(warning)
                    log.warning("%s:%d: %s", warning.source, warning.line, redact(warning.reason),
                                extra={"action": "row_warning"})
            events: list[LeadCreated | DeadLettered] = [
                lead_created(lead, line=line, run_id=run_id) for lead, line in take]
            events += [bad_row_dead_letter(e, source.tenant, run_id) for e in new_errors]
            await self.publisher.publish(events)
            await seen.mark_seen(self.pool, [lead for lead, _ in take])
            await seen.mark_reported(self.pool, new_errors)
            report.created += len(take)
            report.new_bad_rows += len(new_errors)
            if progress is not None:
                progress(len(chunk))
            if report.exhausted_budget or (deadline is not None and time.monotonic() >= deadline):
                break
            if stop is not None and stop.is_set():
                report.stopped = True
                break
        return report


def source_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a source ("path: reason"), or None if it can be opened."""
    if not path.exists():
        return f"{path}: not found"
    if not path.is_file():
        return f"{path}: not a file"
    try:
        with path.open("rb"):
            return None
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"


class HarvestExecutor:
    """Executor of harvest runs over the configured sources in the tick's scope."""

    def __init__(self, pool: asyncpg.Pool, publisher: Publisher,
                 sources: Sequence[HarvestSource], dsn: str, prefix: str = "") -> None:
        self.pool = pool
        # One harvester at a time per deployment: two would read the same files. The lock has
        # a connection of its own, so the pool's connections carry no session state.
        self.lock = AdvisoryLock(dsn, advisory_key("harvest", prefix))
        self.publisher = publisher
        self.sources = sources

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def in_scope(self, ctx: RunContext) -> list[HarvestSource]:
        tick = ctx.tick
        return [s for s in self.sources
                if tick.tenant_id in (ALL_TENANTS, s.tenant)
                and tick.campaign_id in (None, s.campaign)]

    async def execute(self, ctx: RunContext, budget: RunBudget, deadline: float) -> RunResult:
        pool = self.pool
        harvester = Harvester(pool, self.publisher)
        created = bad = 0
        by_tenant: Counter[str] = Counter()
        bad_by_tenant: Counter[str] = Counter()
        stopped = False
        problems: list[str] = []
        broken: set[str] = set()  # tenants with a source that could not be read
        try:
            if not await self.lock.try_acquire():
                log.info("another instance is harvesting; this part does nothing",
                         extra={"action": "harvest_locked"})
                return RunResult()
            for source in self.in_scope(ctx):
                if ctx.stopping:
                    stopped = True
                    break
                if problem := source_problem(source.path):
                    problems.append(problem)
                    broken.add(source.tenant)
                    continue
                try:
                    report = await harvester.harvest(source, at=ctx.at, run_id=ctx.run_id,
                                                     budget=budget, deadline=deadline,
                                                     stop=ctx.stop)
                except OSError as exc:  # unreadable halfway: this source only
                    problems.append(f"{source.path}: {exc.strerror or exc}")
                    broken.add(source.tenant)
                    continue
                created += report.created
                bad += report.new_bad_rows
                by_tenant[source.tenant] += report.created + report.new_bad_rows
                bad_by_tenant[source.tenant] += report.new_bad_rows
                stopped = stopped or report.stopped
                if report.exhausted_budget or time.monotonic() >= deadline or stopped:
                    break
        finally:
            await self.lock.release()
        counts = RunCounts(leads_processed=created + bad, leads_succeeded=created, leads_failed=bad,
                           by_tenant=dict(sorted((+by_tenant).items())),
                           failed_by_tenant=dict(sorted((+bad_by_tenant).items())))
        # The other sources went through; the run still fails, so nobody reads "0 processed"
        # as a quiet night.
        error = (f"harvest source(s) unreadable: {'; '.join(problems)}. Fix the path or the "
                 "file's permissions in harvest.sources" if problems else None)
        return RunResult(counts=counts, timed_out=time.monotonic() >= deadline or stopped,
                         error=error, failed_tenants=tuple(sorted(broken)))
