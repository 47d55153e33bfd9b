"""The leadflow event contract: names, envelope, events, state machine, codec. No I/O."""

from .clock import ALL_TENANTS, TickEmitted
from .codec import BY_TYPE, EVENT_TYPES, decode, encode
from .control import (
    CampaignPaused,
    CampaignResumed,
    ControlEvent,
    KillSwitchChanged,
    LeadReplied,
    LeadUnsubscribed,
    SuppressionAdded,
    SuppressionRemoved,
)
from .dead_letter import DeadLettered
from .envelope import Envelope, utcnow
from .errors import EventDecodeError, LeadflowError
from .jobs import JobCompleted, JobEvent, JobFailed, JobSkipped, JobStarted, RunCounts, RunInfo
from .lead import Assignment, Lead, Outreach, Qualification, ScoreCard
from .lead_events import (
    LeadContacted,
    LeadCreated,
    LeadEvent,
    LeadQualified,
    LeadRejected,
    LeadRouted,
    LeadScored,
)
from .names import (
    LEAD_TOPICS,
    PIPELINE,
    STAGE_INPUTS,
    Health,
    JobName,
    LeadStatus,
    RunStatus,
    TickSource,
    Topic,
    stage_group,
)
from .state_machine import IllegalTransition, apply, check_transition, transition

__all__ = [
    "ALL_TENANTS", "BY_TYPE", "EVENT_TYPES", "LEAD_TOPICS", "PIPELINE", "STAGE_INPUTS",
    "Assignment", "CampaignPaused", "CampaignResumed", "ControlEvent", "DeadLettered",
    "Envelope", "EventDecodeError", "Health", "IllegalTransition", "JobCompleted", "JobEvent",
    "JobFailed", "JobName", "JobSkipped", "JobStarted", "KillSwitchChanged", "Lead",
    "LeadContacted", "LeadCreated", "LeadEvent", "LeadQualified", "LeadRejected", "LeadReplied",
    "LeadRouted", "LeadScored", "LeadStatus", "LeadUnsubscribed", "LeadflowError", "Outreach",
    "Qualification", "RunCounts", "RunInfo", "RunStatus", "ScoreCard", "SuppressionAdded",
    "SuppressionRemoved", "TickEmitted", "TickSource", "Topic", "apply", "check_transition",
    "decode", "encode", "stage_group", "transition", "utcnow",
]
