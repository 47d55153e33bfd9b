"""Ticks: time as data in the log. A tick for a job is a run of that job."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field, field_validator

from .envelope import Envelope, as_utc
from .names import JobName, TickSource, Topic

#: Tenant scope of a tick that applies to every tenant.
ALL_TENANTS = "*"
#: Why a stage that drains a shared topic skips a run scoped to a campaign, or to a tenant
#: without lead topics of its own.
SCOPE_UNSUPPORTED = "scope_unsupported"
#: Why an instance skips its part of a run for a tenant it does not serve
#: (LEADFLOW_TENANTS_INCLUDE / _EXCLUDE).
TENANT_NOT_SERVED = "tenant_not_served"


class TickEmitted(Envelope):
    """The clock (or a person, or a backfill) asks ``job`` to run once.

    ``event_id`` is the tick id and the run id of the run it starts.
    """

    topic: ClassVar[Topic] = Topic.CLOCK_TICKS
    type: Literal["tick.emitted"] = "tick.emitted"
    job: JobName
    scheduled_for: AwareDatetime
    source: TickSource
    max_leads: int | None = Field(default=None, ge=1)
    campaign_id: str | None = None
    requested_by: str | None = None
    retry_of: UUID | None = None
    attempt: int = Field(default=0, ge=0)

    @field_validator("scheduled_for")
    @classmethod
    def _utc_scheduled(cls, value: datetime) -> datetime:
        return as_utc(value)

    @property
    def tick_id(self) -> UUID:
        return self.event_id

    @property
    def scoped(self) -> bool:
        """Whether the run is for one tenant or campaign rather than all of them."""
        return self.tenant_id != ALL_TENANTS or self.campaign_id is not None

    @property
    def scope(self) -> str:
        return f"{self.tenant_id}/{self.campaign_id or '*'}"
