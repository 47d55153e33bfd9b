"""Control events: operator decisions that outreach re-checks before every send."""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from .envelope import Envelope
from .names import Topic


class ControlEvent(Envelope):
    """An operator or recipient decision; ``requested_by`` says who or what asked."""

    topic: ClassVar[Topic] = Topic.CONTROL
    requested_by: str | None = None

    @property
    def key(self) -> str:
        return self.tenant_id


class CampaignPaused(ControlEvent):
    type: Literal["campaign.paused"] = "campaign.paused"
    campaign_id: str = Field(min_length=1)

    @property
    def key(self) -> str:
        return self.campaign_id


class CampaignResumed(ControlEvent):
    type: Literal["campaign.resumed"] = "campaign.resumed"
    campaign_id: str = Field(min_length=1)

    @property
    def key(self) -> str:
        return self.campaign_id


class KillSwitchChanged(ControlEvent):
    """Engaged: no send anywhere for this tenant ("*" for all) until released."""

    type: Literal["kill_switch.changed"] = "kill_switch.changed"
    engaged: bool
    reason: str | None = None


class SuppressionAdded(ControlEvent):
    """Never contact this email, or anyone at this domain."""

    type: Literal["suppression.added"] = "suppression.added"
    email: str | None = None
    domain: str | None = None
    reason: str | None = None


class SuppressionRemoved(ControlEvent):
    type: Literal["suppression.removed"] = "suppression.removed"
    email: str | None = None
    domain: str | None = None


class LeadUnsubscribed(ControlEvent):
    """The recipient asked to stop: their email is never contacted again."""

    type: Literal["lead.unsubscribed"] = "lead.unsubscribed"
    email: str
    lead_id: UUID | None = None


class LeadReplied(ControlEvent):
    """The recipient replied: their sequence stops."""

    type: Literal["lead.replied"] = "lead.replied"
    lead_id: UUID


CONTROL_EVENT_TYPES: tuple[type[ControlEvent], ...] = (
    CampaignPaused,
    CampaignResumed,
    KillSwitchChanged,
    SuppressionAdded,
    SuppressionRemoved,
    LeadUnsubscribed,
    LeadReplied,
)
