"""Manual ticks: a person or a program asks a job to run now. Pure."""

from __future__ import annotations

import uuid
from datetime import datetime

from events import ALL_TENANTS, JobName, TickEmitted, TickSource, utcnow


def manual_tick(job: JobName, *, requested_by: str, max_leads: int | None = None,
                tenant_id: str | None = None, campaign_id: str | None = None,
                at: datetime | None = None) -> TickEmitted:
    """A tick with source=manual; each request is its own run (a fresh id)."""
    now = at or utcnow()
    return TickEmitted(
        event_id=uuid.uuid4(), occurred_at=now, recorded_at=utcnow(),
        tenant_id=tenant_id or ALL_TENANTS, job=job, scheduled_for=now, source=TickSource.MANUAL,
        max_leads=max_leads, campaign_id=campaign_id, requested_by=requested_by,
    )
