"""The lead snapshot every lead event carries, and its parts."""

from __future__ import annotations

from uuid import UUID

from pydantic import AwareDatetime, Field

from .envelope import Frozen
from .names import LeadStatus

#: Counts the read models store as Postgres integer: a larger value is refused at decode.
INT4_MAX = 2**31 - 1

class ScoreCard(Frozen):
    """ICP fit: the total, the points each factor contributed, and the model that decided."""

    value: int = Field(ge=0, le=100)
    factors: dict[str, int]
    model_version: str


class Qualification(Frozen):
    """Outcome of the qualification rules; ``reasons`` are machine-readable codes."""

    qualified: bool
    reasons: tuple[str, ...] = ()


class Assignment(Frozen):
    """Where routing sent the lead: a segment's sequence and an owner."""

    segment: str
    sequence_id: str
    owner: str


class Outreach(Frozen):
    """Progress through the outreach sequence, as of the last send."""

    sequence_id: str
    step: int = Field(ge=1, le=INT4_MAX)
    last_contacted_at: AwareDatetime
    next_action_at: AwareDatetime | None = None
    stopped_reason: str | None = None


class Lead(Frozen):
    """Full state of one lead after a transition; ``version`` grows by one per transition."""

    lead_id: UUID
    tenant_id: str
    campaign_id: str
    email: str
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    company: str | None = None
    domain: str | None = None
    industry: str | None = None
    employees: int | None = Field(default=None, ge=0, le=INT4_MAX)
    country: str | None = None
    source: str | None = None
    do_not_contact: bool = False
    status: LeadStatus
    version: int = Field(ge=1, le=INT4_MAX)
    score: ScoreCard | None = None
    qualification: Qualification | None = None
    route: Assignment | None = None
    outreach: Outreach | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime

    def evolve(self, **changes: object) -> Lead:
        """A copy with ``changes`` applied; the snapshot itself never mutates."""
        return self.model_copy(update=changes)

    @property
    def email_domain(self) -> str:
        return self.email.rpartition("@")[2]
