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

from events import ALL_TENANTS, DeadLettered, JobName, Lead, LeadCreated, tenant_counts, utcnow
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
from .turns import TenantSources, turn_size

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
            await self.take(chunk, source, report, at=at, run_id=run_id, budget=budget)
            if progress is not None:
                progress(len(chunk))
            if report.exhausted_budget or (deadline is not None and time.monotonic() >= deadline):
                break
            if stop is not None and stop.is_set():
                report.stopped = True
                break
        return report

    async def take(self, chunk: Sequence[SourceRow | RowError], source: HarvestSource,
                   report: SourceReport, *, at: datetime, run_id: UUID | None,
                   budget: RunBudget | None,
                   limit: int | None = None) -> list[SourceRow | RowError]:
        """Emit a chunk's new leads (at most ``limit``, and what the budget grants) and its new
        bad rows, adding to ``report``. Returns the rows from the first new lead over
        ``limit`` on, untouched, for a later turn."""
        split = split_rows(chunk, source, at)
        lines, errors = split.lines, split.errors
        fresh_ids = await seen.unseen(self.pool, [lead.lead_id for lead in split.leads])
        fresh: dict[UUID, tuple[Lead, int]] = {}
        for lead, line in lines:  # the same email twice in a file is one lead: keep the first
            if lead.lead_id in fresh_ids and lead.lead_id not in fresh:
                fresh[lead.lead_id] = (lead, line)
        take = list(fresh.values())
        rest: list[SourceRow | RowError] = []
        if limit is not None and len(take) > limit:
            cut = take[limit][1]  # the line of the first new lead left for later
            rest = [row for row in chunk if row.line >= cut]
            take, lines = take[:limit], [(lead, line) for lead, line in lines if line < cut]
            errors = [e for e in errors if e.line < cut]
        report.bad_rows.extend(errors)
        report.already_known += len(lines) - len(take)
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
        return rest


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
        turns = _Turns()
        try:
            if not await self.lock.try_acquire():
                log.info("another instance is harvesting; this part does nothing",
                         extra={"action": "harvest_locked"})
                return RunResult()
            await self._read_in_turns(Harvester(self.pool, self.publisher), ctx, budget,
                                      deadline, turns)
        finally:
            await self.lock.release()
        # Bad rows count as taken and failed, as a stage counts its dead letters.
        counts = tenant_counts(turns.created + turns.bad, turns.bad)
        # The other sources went through; the run still fails, so nobody reads "0 processed"
        # as a quiet night.
        error = (f"harvest source(s) unreadable: {'; '.join(turns.problems)}. Fix the path or "
                 "the file's permissions in harvest.sources" if turns.problems else None)
        return RunResult(counts=counts, timed_out=time.monotonic() >= deadline or turns.stopped,
                         error=error, failed_tenants=tuple(sorted(turns.broken)))

    async def _read_in_turns(self, harvester: Harvester, ctx: RunContext, budget: RunBudget,
                             deadline: float, turns: _Turns) -> None:
        """Read the sources in scope, tenant after tenant a turn at a time (a chunk of rows,
        at most a share of new leads), until they are read, the cap is reached, the time is
        up or the service stops."""
        sources = []
        for source in self.in_scope(ctx):
            if problem := source_problem(source.path):
                turns.fail(source, problem)
            else:
                sources.append(source)
        tenants = TenantSources.group(sources)
        reading, left = list(tenants), budget.total
        try:
            while reading:
                size = turn_size(left, len(reading), CHUNK)
                for group in list(reading):
                    if ctx.stopping:
                        turns.stopped = True
                        return
                    if time.monotonic() >= deadline:
                        return
                    try:
                        turn = group.next_rows(CHUNK)
                    except OSError as exc:  # unreadable halfway: this source only
                        assert group.current is not None
                        turns.fail(group.current, f"{group.current.path}: {exc.strerror or exc}")
                        continue
                    if turn is None:
                        reading.remove(group)
                        continue
                    source, chunk = turn
                    report = SourceReport(source=str(source.path))
                    # A chunk's rows, but no more new leads than the turn's share: rows of
                    # leads already known cost no share, and a known file reads in full chunks.
                    group.put_back(await harvester.take(
                        chunk, source, report, at=ctx.at, run_id=ctx.run_id, budget=budget,
                        limit=size))
                    turns.created[source.tenant] += report.created
                    turns.bad[source.tenant] += report.new_bad_rows
                    left -= report.created
                    if report.exhausted_budget:
                        return
        finally:
            for group in tenants:
                group.close()


@dataclass(slots=True)
class _Turns:
    """What a harvest run did so far, per tenant."""

    created: Counter[str] = field(default_factory=Counter)
    bad: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)  # tenants with a source that could not be read
    stopped: bool = False

    def fail(self, source: HarvestSource, problem: str) -> None:
        self.problems.append(problem)
        self.broken.add(source.tenant)
