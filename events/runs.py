"""A run, folded from its job events: each reporting part's state, and the run's as the fold of
its parts. Pure: the projector stores these rows, `leadflow tick --wait` follows a run with
them, the clock's reaper reads them back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from itertools import chain
from typing import Any, Self
from uuid import UUID

from .jobs import JobCompleted, JobEvent, JobFailed, JobSkipped, JobStarted, merged_by_tenant
from .names import RunStatus


class Row:
    """Mixin for frozen dataclass rows: positional tuples in column order, construction from
    any mapping with those keys (a database record), copies with changes."""

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))  # type: ignore[arg-type]

    @classmethod
    def from_row(cls, record: Any) -> Self:
        return cls(**{name: record[name] for name in cls.columns()})

    def astuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.columns())

    def evolve(self, **changes: Any) -> Self:
        return replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True, slots=True)
class PartRow(Row):
    run_id: UUID
    part: str
    job: str
    status: str
    started_at: datetime | None
    completed_at: datetime | None
    leads_processed: int
    leads_succeeded: int
    leads_failed: int
    partitions: list[int]
    partitions_total: int
    backlog: int | None
    reason: str | None
    error: str | None
    skipped_ticks: int = 0
    cap: int | None = None
    #: Leads this part took, and failed, per tenant.
    leads_by_tenant: dict[str, int] = field(default_factory=dict)
    failed_by_tenant: dict[str, int] = field(default_factory=dict)
    #: A failed part's JobFailed.failed_tenants (empty: it failed as a whole).
    failed_tenants: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RunRow(Row):
    run_id: UUID
    job: str
    tenant_id: str
    campaign_id: str | None
    source: str
    scheduled_for: datetime
    requested_by: str | None
    retry_of: UUID | None
    attempt: int
    max_leads: int | None
    status: str
    started_at: datetime | None
    completed_at: datetime | None
    duration_seconds: float | None
    leads_processed: int
    leads_succeeded: int
    leads_failed: int
    parts: int
    partitions_total: int
    partitions_covered: int
    backlog: int | None
    reason: str | None
    error: str | None
    counted: bool
    recorded_at: datetime
    skipped_ticks: int = 0
    #: The manifest: the cap applied and the leads taken per tenant (the tenant and campaign
    #: the run was for are tenant_id and campaign_id).
    cap: int | None = None
    leads_by_tenant: dict[str, int] = field(default_factory=dict)
    failed_by_tenant: dict[str, int] = field(default_factory=dict)
    #: When failed: the tenants it failed for, if every failed part named them (empty: it
    #: failed as a whole, for every tenant it touched).
    failed_tenants: list[str] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.SKIPPED)

    @property
    def touched(self) -> frozenset[str]:
        """The tenants whose leads the run took or failed, or that it failed for."""
        return frozenset(self.leads_by_tenant) | frozenset(self.failed_by_tenant) | frozenset(
            self.failed_tenants)

    def share_of(self, tenant: str) -> RunRow:
        """The run as ``tenant`` saw it: its leads only, and failed only if the failure was
        the whole run's or named the tenant; never counted before it touched the tenant."""
        return self.evolve(tenant_id=tenant, counted=self.counted and tenant in self.touched,
                           **share(self.status, self.leads_by_tenant, self.failed_by_tenant,
                                   self.failed_tenants, tenant))


def share(status: str, taken: Mapping[str, int], failed: Mapping[str, int],
          failed_tenants: Sequence[str], tenant: str) -> dict[str, Any]:
    """A run's status and lead counts as ``tenant`` saw them: its leads only, and failed only
    if the failure was the whole run's or named the tenant."""
    processed, bad = taken.get(tenant, 0), failed.get(tenant, 0)
    return {"status": status_for(status, failed_tenants, tenant), "leads_processed": processed,
            "leads_succeeded": max(processed - bad, 0), "leads_failed": bad}


def status_for(status: str, failed_tenants: Sequence[str], tenant: str) -> str:
    """A run's status as ``tenant`` sees it: a failure that named other tenants only is,
    for this one, a completed run."""
    if status == RunStatus.FAILED.value and failed_tenants and tenant not in failed_tenants:
        return RunStatus.COMPLETED.value
    return status


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
            error=event.error if isinstance(event, JobFailed) else None, cap=event.cap,
            leads_by_tenant=dict(event.counts.by_tenant),
            failed_by_tenant=dict(event.counts.failed_by_tenant),
            failed_tenants=list(event.failed_tenants) if isinstance(event, JobFailed) else [])
    return part


def new_run(event: JobEvent) -> RunRow:
    info = event.run
    return RunRow(
        run_id=event.run_id, job=event.job.value, tenant_id=event.tenant_id,
        campaign_id=info.campaign_id,
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
        cap=max((p.cap for p in parts if p.cap is not None), default=None),
        leads_by_tenant=merged_by_tenant(*(p.leads_by_tenant for p in parts)),
        failed_by_tenant=merged_by_tenant(*(p.failed_by_tenant for p in parts)),
        failed_tenants=failed_for(parts),
    )


def failed_for(parts: list[PartRow]) -> list[str]:
    """The tenants a run failed for: those its failed parts named, if every one named some
    (one part failed as a whole makes the whole run's failure everyone's)."""
    failed = [p for p in parts if p.status == RunStatus.FAILED.value]
    if not failed or any(not p.failed_tenants for p in failed):
        return []
    return sorted(set(chain.from_iterable(p.failed_tenants for p in failed)))
