"""Tick events the clock and the backfill command emit. Pure builders."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from events import TickEmitted, TickSource
from events.ids import tick_id

from .schedule import DueTick, Schedule


def scheduled_tick(schedule: Schedule, due: DueTick, *, recorded_at: datetime,
                   requested_by: str) -> TickEmitted:
    """A schedule or catch-up tick: its id is uuid5(job, scope, scheduled_for)."""
    return TickEmitted(
        event_id=due.tick_id, occurred_at=due.scheduled_for, recorded_at=recorded_at,
        tenant_id=schedule.tenant_id, job=schedule.job, scheduled_for=due.scheduled_for,
        source=due.source, max_leads=schedule.max_leads, campaign_id=schedule.campaign_id,
        requested_by=requested_by,
    )


def backfill_tick_id(schedule: Schedule, scheduled_for: datetime, request: UUID) -> UUID:
    """Distinct from the scheduled tick of the same instant (a backfill is a new run), and
    stable within one request (publishing it again is harmless)."""
    return tick_id(schedule.job.value, f"{schedule.scope}|backfill|{request}", scheduled_for)


def backfill_tick(schedule: Schedule, scheduled_for: datetime, *, request: UUID,
                  recorded_at: datetime, requested_by: str,
                  max_leads: int | None = None) -> TickEmitted:
    return TickEmitted(
        event_id=backfill_tick_id(schedule, scheduled_for, request), occurred_at=scheduled_for,
        recorded_at=recorded_at, tenant_id=schedule.tenant_id,
        job=schedule.job, scheduled_for=scheduled_for, source=TickSource.BACKFILL,
        max_leads=max_leads or schedule.max_leads, campaign_id=schedule.campaign_id,
        requested_by=requested_by,
    )
