"""Folding the log into read models. Pure: (what the database holds, a batch) -> changes.

The same fold serves live projection, a rebuild, and the tests' reference fold of a whole
log, so all three agree by construction. Nothing here depends on batch boundaries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import chain
from typing import Any
from uuid import UUID

from events import (
    ControlEvent,
    DeadLettered,
    Envelope,
    EventDecodeError,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobName,
    JobSkipped,
    JobStarted,
    LeadContacted,
    LeadEvent,
    LeadRejected,
    RunStatus,
    TickEmitted,
    Topic,
    decode,
)
from events.errors import ImplausibleEvent
from events.state_machine import implausibility

from .rows import MetricsRow, PartRow, RunRow

ALL_TENANTS = "*"
#: pipeline_daily metric of leads sent their first step (entered:CONTACTED counts every step).
FIRST_CONTACT = "contacted:first_step"


@dataclass(frozen=True, slots=True)
class Positioned:
    """An event and where it sits in the log."""

    topic: str
    partition: int
    offset: int
    event: Envelope | None  # None: undecodable (it still advances the offset)
    raw: bytes | None = None  # the message as stored, kept as the audit payload


def admit(value: bytes | None, topic: Topic | None) -> tuple[Envelope | None, Exception | None]:
    """The event a message found on ``topic`` holds, if the projector may fold it; else None and
    why (the message goes to the dead-letter topic and only advances the offset)."""
    try:
        event = decode(value or b"")
    except EventDecodeError as exc:
        return None, exc
    if problem := implausibility(event, topic):
        return None, ImplausibleEvent(problem)
    return event, None


@dataclass(slots=True)
class Loaded:
    """What the database already holds for the keys a batch touches."""

    lead_versions: dict[UUID, int] = field(default_factory=dict)
    known_event_ids: set[UUID] = field(default_factory=set)
    parts: dict[tuple[UUID, str], PartRow] = field(default_factory=dict)
    runs: dict[UUID, RunRow] = field(default_factory=dict)
    metrics: dict[tuple[str, str], MetricsRow] = field(default_factory=dict)


@dataclass(slots=True)
class Changes:
    """Everything one batch writes, in one transaction with ``offsets``."""

    leads: dict[UUID, LeadEvent] = field(default_factory=dict)
    #: Leads in ``leads`` that the database does not hold yet (inserted, not upserted).
    new_leads: set[UUID] = field(default_factory=set)
    lead_events: list[Positioned] = field(default_factory=list)
    parts: dict[tuple[UUID, str], PartRow] = field(default_factory=dict)
    runs: dict[UUID, RunRow] = field(default_factory=dict)
    metrics: dict[tuple[str, str], MetricsRow] = field(default_factory=dict)
    daily: Counter[tuple[date, str, str, str]] = field(default_factory=Counter)
    dead_letters: list[DeadLettered] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    #: Retention runs in this batch: (tick, prune job_runs / lead_events recorded before).
    prunes: list[tuple[TickEmitted, datetime]] = field(default_factory=list)


def keys_of(batch: Iterable[Positioned]) -> tuple[set[UUID], set[UUID], set[UUID], set[str]]:
    """(lead ids, event ids, run ids, jobs) a batch touches: what to load before folding it."""
    leads, event_ids, runs, jobs = set(), set(), set(), set()
    for item in batch:
        event = item.event
        if isinstance(event, LeadEvent):
            leads.add(event.lead.lead_id)
            event_ids.add(event.event_id)
        elif isinstance(event, DeadLettered):
            event_ids.add(event.event_id)
        elif isinstance(event, JobEvent):
            runs.add(event.run_id)
            jobs.add(event.job.value)
    return leads, event_ids, runs, jobs


def fold(batch: Iterable[Positioned], loaded: Loaded, *,
         retention: timedelta = timedelta(days=30)) -> Changes:
    """Apply a batch, in log order, to what the database holds.

    A retention tick prunes rows older than its scheduled_for minus ``retention``: decided by
    the log, not the wall clock, so a rebuild prunes exactly what the live projector pruned.
    """
    changes = Changes()
    versions = dict(loaded.lead_versions)
    known = set(loaded.known_event_ids)
    parts: dict[UUID, dict[str, PartRow]] = {}
    for (run_id, part), row in loaded.parts.items():
        parts.setdefault(run_id, {})[part] = row
    runs = dict(loaded.runs)
    metrics = dict(loaded.metrics)
    for item in batch:
        event = item.event
        changes.offsets[(item.topic, item.partition)] = item.offset + 1
        if isinstance(event, LeadEvent):
            _fold_lead(item, event, versions, known, changes)
            if event.lead.lead_id not in loaded.lead_versions:
                changes.new_leads.add(event.lead.lead_id)
        elif isinstance(event, JobEvent):
            _fold_job(event, parts, runs, metrics, changes)
        elif isinstance(event, DeadLettered):
            if event.event_id not in known:
                known.add(event.event_id)
                changes.dead_letters.append(event)
        elif isinstance(event, TickEmitted) and event.job is JobName.RETENTION:
            changes.prunes.append((event, event.scheduled_for - retention))
        elif isinstance(event, TickEmitted | ControlEvent):
            pass  # ticks become runs through job events; control state lives with contact
    return changes


def _fold_lead(item: Positioned, event: LeadEvent, versions: dict[UUID, int], known: set[UUID],
               changes: Changes) -> None:
    if event.event_id in known:
        return  # a redelivered duplicate: same id, already folded
    known.add(event.event_id)
    changes.lead_events.append(item)
    lead = event.lead
    day = event.occurred_at.date()
    changes.daily[(day, lead.tenant_id, lead.campaign_id, f"entered:{lead.status.value}")] += 1
    if isinstance(event, LeadRejected):
        for reason in event.reasons:
            changes.daily[(day, lead.tenant_id, lead.campaign_id, f"rejected:{reason}")] += 1
    elif isinstance(event, LeadContacted) and event.step == 1:
        # CONTACTED counts every step sent; conversions need the leads reached for the first time.
        changes.daily[(day, lead.tenant_id, lead.campaign_id, FIRST_CONTACT)] += 1
    # Topics interleave, so a lead's events can arrive out of order: the highest version wins.
    if lead.version > versions.get(lead.lead_id, 0):
        versions[lead.lead_id] = lead.version
        changes.leads[lead.lead_id] = event


def _fold_job(event: JobEvent, parts: dict[UUID, dict[str, PartRow]], runs: dict[UUID, RunRow],
              metrics: dict[tuple[str, str], MetricsRow], changes: Changes) -> None:
    run_parts = parts.setdefault(event.run_id, {})
    before = run_parts.get(event.part)
    after = evolve_part(before, event)
    if after is before:
        return
    run_parts[event.part] = changes.parts[(event.run_id, event.part)] = after
    previous = runs.get(event.run_id) or new_run(event)
    run = derive_run(previous, list(run_parts.values()))
    for tenant in {run.tenant_id, ALL_TENANTS}:
        mkey = (run.job, tenant)
        current = metrics.get(mkey) or MetricsRow(job=run.job, tenant_id=tenant)
        updated = count_run(current, previous, run)
        if updated is not current:
            metrics[mkey] = changes.metrics[mkey] = updated
    if run.terminal and not run.counted:
        run = run.evolve(counted=True)
    runs[event.run_id] = changes.runs[event.run_id] = run


def evolve_part(part: PartRow | None, event: JobEvent) -> PartRow:
    """A part's state after one of its job events. The first terminal report wins."""
    if part is None:
        part = PartRow(run_id=event.run_id, part=event.part, job=event.job.value,
                       status=RunStatus.RUNNING.value, started_at=None, completed_at=None,
                       leads_processed=0, leads_succeeded=0, leads_failed=0, partitions=[],
                       partitions_total=0, backlog=None, reason=None, error=None)
    if part.status != RunStatus.RUNNING.value:
        return part
    if isinstance(event, JobStarted):
        return part if part.started_at else part.evolve(started_at=event.started_at)
    if isinstance(event, JobSkipped):
        return part.evolve(status=RunStatus.SKIPPED.value, reason=event.reason,
                           skipped_ticks=event.ticks)
    if isinstance(event, JobCompleted | JobFailed):
        failed = isinstance(event, JobFailed)
        return part.evolve(
            status=RunStatus.FAILED.value if failed else RunStatus.COMPLETED.value,
            started_at=part.started_at or event.started_at, completed_at=event.completed_at,
            leads_processed=event.counts.leads_processed,
            leads_succeeded=event.counts.leads_succeeded, leads_failed=event.counts.leads_failed,
            partitions=sorted(event.partitions), partitions_total=event.partitions_total,
            backlog=event.backlog, reason=event.reason if isinstance(event, JobFailed) else None,
            error=event.error if isinstance(event, JobFailed) else None)
    return part


def new_run(event: JobEvent) -> RunRow:
    info = event.run
    return RunRow(
        run_id=event.run_id, job=event.job.value, tenant_id=event.tenant_id, campaign_id=None,
        source=info.source.value, scheduled_for=info.scheduled_for, requested_by=info.requested_by,
        retry_of=info.retry_of, attempt=info.attempt, max_leads=info.max_leads,
        status=RunStatus.RUNNING.value, started_at=None, completed_at=None, duration_seconds=None,
        leads_processed=0, leads_succeeded=0, leads_failed=0, parts=0, partitions_total=0,
        partitions_covered=0, backlog=None, reason=None, error=None, counted=False,
        recorded_at=event.recorded_at)


def run_status(parts: list[PartRow], covered: int, total: int) -> RunStatus:
    """Fold of the parts' statuses: complete once the parts cover every input partition."""
    statuses = {p.status for p in parts}
    if statuses == {RunStatus.SKIPPED.value}:
        return RunStatus.SKIPPED
    if RunStatus.RUNNING.value in statuses:
        return RunStatus.RUNNING
    if RunStatus.FAILED.value in statuses:
        return RunStatus.FAILED
    if RunStatus.SKIPPED.value in statuses or total == 0 or covered >= total:
        return RunStatus.COMPLETED
    return RunStatus.RUNNING  # some instance has not reported its share yet


def derive_run(run: RunRow, parts: list[PartRow]) -> RunRow:
    """The run row as the fold of its parts."""
    parts = sorted(parts, key=lambda p: p.part)
    total = max((p.partitions_total for p in parts), default=0)
    covered = len(set(chain.from_iterable(p.partitions for p in parts)) & set(range(total)))
    status = run_status(parts, covered, total)
    starts = [p.started_at for p in parts if p.started_at]
    ends = [p.completed_at for p in parts if p.completed_at]
    started_at = min(starts) if starts else None
    terminal = status is not RunStatus.RUNNING
    completed_at = max(ends) if ends and terminal else None
    failed = next((p for p in parts if p.status == RunStatus.FAILED.value), None)
    skipped = next((p for p in parts if p.status == RunStatus.SKIPPED.value), None)
    explain = failed or (skipped if status is RunStatus.SKIPPED else None)
    backlogs = [p.backlog for p in parts if p.backlog is not None]
    return run.evolve(
        status=status.value,
        started_at=started_at,
        completed_at=completed_at,
        duration_seconds=(completed_at - started_at).total_seconds()
        if completed_at and started_at else None,
        leads_processed=sum(p.leads_processed for p in parts),
        leads_succeeded=sum(p.leads_succeeded for p in parts),
        leads_failed=sum(p.leads_failed for p in parts),
        parts=len(parts),
        partitions_total=total,
        partitions_covered=covered,
        backlog=sum(backlogs) if backlogs else None,
        reason=explain.reason if explain else None,
        error=explain.error if explain else None,
        skipped_ticks=max((p.skipped_ticks for p in parts), default=0),
    )


def count_run(m: MetricsRow, before: RunRow, run: RunRow) -> MetricsRow:
    """Job metrics after ``run`` changed: counted once when it first ends; later lead counts
    (a late part) add their difference."""
    if not run.terminal:
        return m
    if before.counted:
        delta = {
            "total_leads_processed": run.leads_processed - before.leads_processed,
            "total_leads_succeeded": run.leads_succeeded - before.leads_succeeded,
            "total_leads_failed": run.leads_failed - before.leads_failed,
        }
        if not any(delta.values()):
            return m
        return m.evolve(**{k: getattr(m, k) + v for k, v in delta.items()})
    # a streak of overlap skips is one row for all its ticks; each tick was a run not made
    runs = max(run.skipped_ticks, 1) if run.status == RunStatus.SKIPPED.value else 1
    changes: dict[str, Any] = {
        "total_runs": m.total_runs + runs,
        "total_leads_processed": m.total_leads_processed + run.leads_processed,
        "total_leads_succeeded": m.total_leads_succeeded + run.leads_succeeded,
        "total_leads_failed": m.total_leads_failed + run.leads_failed,
    }
    ended: datetime | None = run.completed_at or run.started_at
    if run.status == RunStatus.SKIPPED.value:
        changes["skipped_runs"] = m.skipped_runs + runs
    else:
        changes["total_duration_seconds"] = m.total_duration_seconds + (run.duration_seconds or 0.0)
        changes["last_run_at"] = _later(m.last_run_at, ended)
        if run.status == RunStatus.COMPLETED.value:
            changes["successful_runs"] = m.successful_runs + 1
            changes["consecutive_failures"] = 0
            changes["last_success_at"] = _later(m.last_success_at, ended)
        else:
            changes["failed_runs"] = m.failed_runs + 1
            changes["consecutive_failures"] = m.consecutive_failures + 1
            changes["last_failure_at"] = _later(m.last_failure_at, ended)
    return m.evolve(**changes)


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)
