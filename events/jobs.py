"""Job events: what each part of a run did. The projector folds the parts into one run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import ClassVar, Literal, TypedDict
from uuid import UUID

from pydantic import AwareDatetime, Field

from .envelope import Envelope, Frozen
from .names import JobName, TickSource, Topic


class RunInfo(Frozen):
    """The tick a run answers; repeated on every job event so each can be folded alone."""

    scheduled_for: AwareDatetime
    source: TickSource
    max_leads: int | None = None
    requested_by: str | None = None
    retry_of: UUID | None = None
    attempt: int = 0
    campaign_id: str | None = None


class JobEvent(Envelope):
    """One part of a run (``part`` is the reporting instance; a run may have several)."""

    topic: ClassVar[Topic] = Topic.JOBS_EVENTS
    run_id: UUID
    job: JobName
    part: str
    run: RunInfo


class JobPartFields(TypedDict):
    """What every job event of one part of one run repeats (for building them with ``**``)."""

    occurred_at: datetime
    tenant_id: str
    correlation_id: UUID | None
    causation_id: UUID | None
    run_id: UUID
    job: JobName
    part: str
    run: RunInfo


class JobEventFields(JobPartFields):
    """JobPartFields plus one event's id and time (its kind is in the id)."""

    event_id: UUID
    recorded_at: datetime
    replay_id: str | None


class RunCounts(Frozen):
    leads_processed: int = Field(default=0, ge=0)
    leads_succeeded: int = Field(default=0, ge=0)
    leads_failed: int = Field(default=0, ge=0)
    #: Leads taken per tenant (of leads_processed): the run's manifest.
    by_tenant: dict[str, int] = Field(default_factory=dict)
    #: Leads failed per tenant (of leads_failed).
    failed_by_tenant: dict[str, int] = Field(default_factory=dict)


def tenant_counts(taken: Mapping[str, int], failed: Mapping[str, int]) -> RunCounts:
    """A run's counts from the leads it took and failed per tenant (failed ones among those
    taken)."""
    processed, bad = sum(taken.values()), sum(failed.values())
    return RunCounts(leads_processed=processed, leads_succeeded=processed - bad,
                     leads_failed=bad, by_tenant=dict(sorted((+Counter(taken)).items())),
                     failed_by_tenant=dict(sorted((+Counter(failed)).items())))


def merged_by_tenant(*counts: dict[str, int]) -> dict[str, int]:
    """Leads per tenant of several counts together."""
    total: dict[str, int] = {}
    for each in counts:
        for tenant, n in each.items():
            total[tenant] = total.get(tenant, 0) + n
    return dict(sorted(total.items()))


class JobStarted(JobEvent):
    type: Literal["job.started"] = "job.started"
    started_at: AwareDatetime


class JobCompleted(JobEvent):
    type: Literal["job.completed"] = "job.completed"
    started_at: AwareDatetime
    completed_at: AwareDatetime
    duration_seconds: float = Field(ge=0)
    counts: RunCounts
    partitions: tuple[int, ...] = ()
    partitions_total: int = 0
    backlog: int | None = None
    #: The cap the run was given (the tick's, else the job's max_leads_per_run).
    cap: int | None = None


class JobFailed(JobEvent):
    type: Literal["job.failed"] = "job.failed"
    started_at: AwareDatetime
    completed_at: AwareDatetime
    duration_seconds: float = Field(ge=0)
    counts: RunCounts
    reason: str
    error: str
    partitions: tuple[int, ...] = ()
    partitions_total: int = 0
    backlog: int | None = None
    cap: int | None = None
    #: The tenants whose own work failed the run (harvest: their unreadable sources); the
    #: others' work went through. Empty: the run failed as a whole (timeout, stop, crash).
    failed_tenants: tuple[str, ...] = ()


class JobSkipped(JobEvent):
    type: Literal["job.skipped"] = "job.skipped"
    reason: str
    #: Scheduled ticks this report stands for: an instance reports a streak of ticks that
    #: arrived during one run of its own ("overlap") once, under the streak's first tick.
    ticks: int = Field(default=1, ge=1)


JOB_EVENT_TYPES: tuple[type[JobEvent], ...] = (JobStarted, JobCompleted, JobFailed, JobSkipped)
