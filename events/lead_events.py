"""Lead transitions: one event per status change, each with the full snapshot after it."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .envelope import Envelope
from .lead import INT4_MAX, Lead
from .names import LeadStatus, Topic


class LeadEvent(Envelope):
    """A transition of one lead; ``lead`` is the snapshot after it."""

    topic: ClassVar[Topic]
    target: ClassVar[LeadStatus]
    lead: Lead

    @property
    def lead_id(self) -> str:
        return str(self.lead.lead_id)


class LeadCreated(LeadEvent):
    topic: ClassVar[Topic] = Topic.LEADS_NEW
    target: ClassVar[LeadStatus] = LeadStatus.NEW
    type: Literal["lead.created"] = "lead.created"
    source_line: int | None = Field(default=None, ge=1, le=INT4_MAX)


class LeadScored(LeadEvent):
    topic: ClassVar[Topic] = Topic.LEADS_SCORED
    target: ClassVar[LeadStatus] = LeadStatus.SCORED
    type: Literal["lead.scored"] = "lead.scored"


class LeadQualified(LeadEvent):
    topic: ClassVar[Topic] = Topic.LEADS_QUALIFIED
    target: ClassVar[LeadStatus] = LeadStatus.QUALIFIED
    type: Literal["lead.qualified"] = "lead.qualified"


class LeadRejected(LeadEvent):
    topic: ClassVar[Topic] = Topic.LEADS_REJECTED
    target: ClassVar[LeadStatus] = LeadStatus.REJECTED
    type: Literal["lead.rejected"] = "lead.rejected"
    reasons: tuple[str, ...] = Field(min_length=1)


class LeadRouted(LeadEvent):
    topic: ClassVar[Topic] = Topic.LEADS_ROUTED
    target: ClassVar[LeadStatus] = LeadStatus.ROUTED
    type: Literal["lead.routed"] = "lead.routed"


class LeadContacted(LeadEvent):
    """One outreach step was sent (or recorded, in proof mode)."""

    topic: ClassVar[Topic] = Topic.LEADS_CONTACTED
    target: ClassVar[LeadStatus] = LeadStatus.CONTACTED
    type: Literal["lead.contacted"] = "lead.contacted"
    step: int = Field(ge=1, le=INT4_MAX)
    idempotency_key: str
    sender: str
    subject: str | None = None


LEAD_EVENT_TYPES: tuple[type[LeadEvent], ...] = (
    LeadCreated,
    LeadScored,
    LeadQualified,
    LeadRejected,
    LeadRouted,
    LeadContacted,
)
