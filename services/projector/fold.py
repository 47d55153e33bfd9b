"""Folding the log into read models. Pure: (what the database holds, a batch) -> changes.

The same fold serves live projection, a rebuild, and the tests' reference fold of a whole
log, so all three agree by construction. Nothing here depends on batch boundaries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from events import (
    ControlEvent,
    DeadLettered,
    Envelope,
    EventDecodeError,
    JobEvent,
    JobName,
    LeadContacted,
    LeadEvent,
    LeadRejected,
    LeadStatus,
    RunStatus,
    TickEmitted,
    Topic,
    decode,
)
from events.errors import ImplausibleEvent
from events.runs import PartRow, RunRow, derive_run, evolve_part, new_run
from events.state_machine import implausibility

from .rows import MetricsRow

ALL_TENANTS = "*"
#: pipeline_daily metric of leads sent their first step (entered:CONTACTED counts every step).
FIRST_CONTACT = "contacted:first_step"


def entered(status: LeadStatus) -> str:
    """The pipeline_daily metric of leads entering ``status``."""
    return f"entered:{status.value}"


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
    #: The lead_counts row each stored lead is counted in: (tenant, campaign, status).
    lead_statuses: dict[UUID, tuple[str, str, str]] = field(default_factory=dict)
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
    #: What each lead_counts row (tenant, campaign, status) gains or loses, as each lead leaves
    #: the row it was counted in for the row of its newest event; no zero entries.
    lead_counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    dead_letters: list[DeadLettered] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    #: Retention runs in this batch: (tick, prune job_runs / lead_events recorded before).
    prunes: list[tuple[TickEmitted, datetime]] = field(default_factory=list)


def keys_of(batch: Iterable[Positioned]) -> tuple[set[UUID], set[UUID], set[str]]:
    """(lead ids, run ids, jobs) a batch touches: what to load before folding it."""
    leads, runs, jobs = set(), set(), set()
    for item in batch:
        event = item.event
        if isinstance(event, LeadEvent):
            leads.add(event.lead.lead_id)
        elif isinstance(event, JobEvent):
            runs.add(event.run_id)
            jobs.add(event.job.value)
    return leads, runs, jobs


@dataclass(slots=True)
class Suspects:
    """Events of a batch that may be folded already (redelivered duplicates), by the key each
    is stored under: lead events as (lead_id, version, event_id), dead letters by event id."""

    lead_events: set[tuple[UUID, int, UUID]] = field(default_factory=set)
    dead_letters: set[UUID] = field(default_factory=set)


def to_check(batch: Iterable[Positioned], lead_versions: dict[UUID, int]) -> Suspects:
    """The batch's events that need a lookup before folding.

    A lead's row and its events are written in one transaction and the row keeps the highest
    version folded, so an event above the stored version cannot have been folded: only the
    others (and every dead letter) need a lookup.
    """
    suspects = Suspects()
    for item in batch:
        event = item.event
        if isinstance(event, LeadEvent):
            lead = event.lead
            if lead.version <= lead_versions.get(lead.lead_id, 0):
                suspects.lead_events.add((lead.lead_id, lead.version, event.event_id))
        elif isinstance(event, DeadLettered):
            suspects.dead_letters.add(event.event_id)
    return suspects


def fold(batch: Iterable[Positioned], loaded: Loaded, *,
         retention: timedelta = timedelta(days=30)) -> Changes:
    """Apply a batch, in log order, to what the database holds.

    A retention tick prunes rows older than its scheduled_for minus ``retention``: decided by
    the log, not the wall clock, so a rebuild prunes exactly what the live projector pruned.
    """
    changes = Changes()
    # Each lead's highest version so far and the lead_counts row it is counted in, so that
    # one lookup per event decides the write and moves the count.
    statuses = loaded.lead_statuses
    versions = {lead_id: (version, statuses.get(lead_id))
                for lead_id, version in loaded.lead_versions.items()}
    moved: Counter[tuple[str, str, str]] = Counter()
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
            _fold_lead(item, event, versions, known, changes, moved)
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
    changes.lead_counts = Counter({key: n for key, n in moved.items() if n})
    return changes


def _fold_lead(item: Positioned, event: LeadEvent,
               versions: dict[UUID, tuple[int, tuple[str, str, str] | None]], known: set[UUID],
               changes: Changes, moved: Counter[tuple[str, str, str]]) -> None:
    if event.event_id in known:
        return  # a redelivered duplicate: same id, already folded
    known.add(event.event_id)
    changes.lead_events.append(item)
    lead = event.lead
    day = event.occurred_at.date()
    changes.daily[(day, lead.tenant_id, lead.campaign_id, entered(lead.status))] += 1
    if isinstance(event, LeadRejected):
        for reason in event.reasons:
            changes.daily[(day, lead.tenant_id, lead.campaign_id, f"rejected:{reason}")] += 1
    elif isinstance(event, LeadContacted) and event.step == 1:
        # CONTACTED counts every step sent; conversions need the leads reached for the first time.
        changes.daily[(day, lead.tenant_id, lead.campaign_id, FIRST_CONTACT)] += 1
    # Topics interleave, so a lead's events can arrive out of order: the highest version wins.
    held = versions.get(lead.lead_id)
    if held is None or lead.version > held[0]:
        # The lead leaves the count it was in (stored, or an earlier event of this batch).
        counted = (lead.tenant_id, lead.campaign_id, lead.status.value)
        if held is not None and held[1] is not None:
            moved[held[1]] -= 1
        moved[counted] += 1
        versions[lead.lead_id] = (lead.version, counted)
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
    for tenant, seen_before, seen_now in metric_shares(previous, run):
        mkey = (run.job, tenant)
        current = metrics.get(mkey) or MetricsRow(job=run.job, tenant_id=tenant)
        updated = count_run(current, seen_before, seen_now)
        if updated is not current:
            metrics[mkey] = changes.metrics[mkey] = updated
    if run.terminal and not run.counted:
        run = run.evolve(counted=True)
    runs[event.run_id] = changes.runs[event.run_id] = run


def metric_shares(before: RunRow, run: RunRow) -> list[tuple[str, RunRow, RunRow]]:
    """The job_metrics rows a run change moves, each with the run before and after as that
    row sees it: all tenants' row; then a scoped run's tenant, or, for an unscoped run, each
    tenant it touched with its share (so a tenant's health counts the nightly run over all)."""
    if run.tenant_id != ALL_TENANTS:
        return [(ALL_TENANTS, before, run), (run.tenant_id, before, run)]
    return [(ALL_TENANTS, before, run),
            *((t, before.share_of(t), run.share_of(t)) for t in sorted(run.touched))]


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
