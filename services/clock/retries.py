"""Retries and auto-pause: pure decisions on a failed run. The follower records them."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any, Self
from uuid import UUID

from events import JobFailed, JobName, TickEmitted, TickSource
from events.ids import event_id
from services.runtime.config import JobConfig


@dataclass(frozen=True, slots=True)
class RetryRow:
    """A retry the clock owes: run ``retry_of`` again as attempt ``attempt`` at ``due_at``."""

    retry_of: UUID
    attempt: int
    tick_id: UUID
    failed_run: UUID
    job: str
    tenant_id: str
    campaign_id: str | None
    scheduled_for: datetime
    max_leads: int | None
    due_at: datetime
    status: str = "pending"
    note: str | None = None

    @classmethod
    def from_row(cls, record: Any) -> Self:
        return cls(**{f.name: record[f.name] for f in fields(cls)})

    def evolve(self, **changes: Any) -> Self:
        return replace(self, **changes)


def retry_tick_id(first_run: UUID, attempt: int) -> UUID:
    """Deterministic: a failure seen twice owes the same retry, never a second one."""
    return event_id(first_run, f"retry.{attempt}")


def backoff(config: JobConfig, attempt: int) -> timedelta:
    """retry_backoff_seconds * 2^(attempt-1): 1x, 2x, 4x..."""
    return timedelta(seconds=config.retry_backoff_seconds * 2 ** (attempt - 1))


def retry_for(failed: JobFailed, config: JobConfig, campaign_id: str | None) -> RetryRow | None:
    """The retry a failed run earns (None: retries off or used up)."""
    if not config.retry_on_failure:
        return None
    attempt = failed.run.attempt + 1
    if attempt > config.max_retries:
        return None
    first = failed.run.retry_of or failed.run_id
    return RetryRow(
        retry_of=first, attempt=attempt, tick_id=retry_tick_id(first, attempt),
        failed_run=failed.run_id, job=failed.job.value, tenant_id=failed.tenant_id,
        campaign_id=campaign_id, scheduled_for=failed.run.scheduled_for,
        max_leads=failed.run.max_leads, due_at=failed.completed_at + backoff(config, attempt),
    )


def should_pause(config: JobConfig, streak: int, paused: bool) -> bool:
    """Auto-pause once ``pause_after_failures`` runs in a row failed (0: never)."""
    return not paused and config.pause_after_failures > 0 and streak >= config.pause_after_failures


def retry_tick(row: RetryRow, *, recorded_at: datetime, requested_by: str) -> TickEmitted:
    """The tick of a retry: same interval (scheduled_for) and scope as the run that failed."""
    return TickEmitted(
        event_id=row.tick_id, occurred_at=row.scheduled_for, recorded_at=recorded_at,
        tenant_id=row.tenant_id, correlation_id=row.retry_of, causation_id=row.failed_run,
        job=JobName(row.job), scheduled_for=row.scheduled_for, source=TickSource.RETRY,
        max_leads=row.max_leads, campaign_id=row.campaign_id, requested_by=requested_by,
        retry_of=row.retry_of, attempt=row.attempt,
    )
