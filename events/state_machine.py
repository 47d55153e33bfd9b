"""The lead state machine: which transitions are legal, how events are built and folded.

A lead's life:  NEW -> SCORED -> QUALIFIED -> ROUTED -> CONTACTED (step 1..n)
                              \\-> REJECTED
Re-scoring (a replay through a new model) may move SCORED, QUALIFIED or REJECTED back to
SCORED so the lead re-enters qualification, and re-qualifying (a replay of qualify) may move a
QUALIFIED or REJECTED lead to either verdict again; a routed or contacted lead keeps its route
and contact history (see docs/state-machine.md).
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any, TypeVar
from uuid import UUID

from . import ids
from .envelope import Envelope, utcnow
from .errors import LeadflowError
from .lead import Lead
from .lead_events import (
    LeadContacted,
    LeadCreated,
    LeadEvent,
    LeadQualified,
    LeadRejected,
    LeadRouted,
    LeadScored,
)
from .names import LeadStatus, Topic

S = LeadStatus

#: event type -> statuses it may leave from (None: the lead does not exist yet).
ALLOWED_FROM: dict[str, frozenset[LeadStatus | None]] = {
    LeadCreated.model_fields["type"].default: frozenset({None}),
    LeadScored.model_fields["type"].default: frozenset({S.NEW, S.SCORED, S.QUALIFIED, S.REJECTED}),
    # QUALIFIED / REJECTED -> again: only a replay of qualify moves from those (docs/replay.md).
    LeadQualified.model_fields["type"].default: frozenset({S.SCORED, S.QUALIFIED, S.REJECTED}),
    LeadRejected.model_fields["type"].default: frozenset({S.SCORED, S.QUALIFIED, S.REJECTED}),
    LeadRouted.model_fields["type"].default: frozenset({S.QUALIFIED}),
    LeadContacted.model_fields["type"].default: frozenset({S.ROUTED, S.CONTACTED}),
}

E = TypeVar("E", bound=LeadEvent)


class IllegalTransition(LeadflowError):
    """An event that the lead's current status does not allow."""

    def __init__(self, lead_id: UUID | str | None, status: LeadStatus | None, attempted: str,
                 detail: str = "") -> None:
        self.lead_id = lead_id
        self.status = status
        self.attempted = attempted
        self.detail = detail
        where = status.value if status else "no state (lead does not exist)"
        message = f"lead {lead_id}: {attempted} is not allowed from {where}"
        super().__init__(f"{message}: {detail}" if detail else message)


@cache
def event_type(cls: type[LeadEvent]) -> str:
    # cached: pydantic builds model_fields anew on every class access (~10 µs, per lead)
    name: str = cls.model_fields["type"].default
    return name


@cache
def _event_field_names(cls: type[LeadEvent]) -> frozenset[str]:
    return frozenset(cls.model_fields)


def check_transition(current: Lead | None, cls: type[LeadEvent]) -> None:
    """Raise IllegalTransition unless ``cls`` may follow the lead's current status."""
    status = current.status if current is not None else None
    attempted = event_type(cls)
    if status not in ALLOWED_FROM[attempted]:
        lead_id = current.lead_id if current is not None else None
        raise IllegalTransition(lead_id, status, attempted)


def _check_invariants(lead: Lead, event: LeadEvent) -> None:
    required = {
        S.SCORED: lead.score is not None,
        S.QUALIFIED: lead.qualification is not None and lead.qualification.qualified,
        S.REJECTED: lead.qualification is not None and not lead.qualification.qualified,
        S.ROUTED: lead.route is not None and lead.qualification is not None,
        S.CONTACTED: lead.outreach is not None and lead.route is not None,
    }
    if not required.get(lead.status, True):
        raise IllegalTransition(lead.lead_id, lead.status, event.type,
                                "snapshot lacks the fields its status requires")


#: The lowest version a snapshot in each status can have: every event adds one, and a lead
#: reaches a status only through the ones before it (NEW is always version 1).
MIN_VERSION: dict[LeadStatus, int] = {S.NEW: 1, S.SCORED: 2, S.QUALIFIED: 3, S.REJECTED: 3,
                                      S.ROUTED: 4, S.CONTACTED: 5}


def implausibility(event: Envelope, topic: Topic | None) -> str | None:
    """Why ``event`` cannot be a step of the log as found on ``topic``, judged from the event
    alone (topics interleave, so the lead's other events may not have been read yet); None if
    it can. Catches events forged by other clients, not every lie a consistent forgery tells."""
    home = getattr(type(event), "topic", None)
    if topic is not None and home is not None and home is not topic:
        return f"{event.type} does not belong on {topic.value} (it is written to {home.value})"
    if not isinstance(event, LeadEvent):
        return None
    lead = event.lead
    if lead.status is not event.target:
        return f"{event.type}: snapshot status {lead.status} should be {event.target}"
    if lead.status is S.NEW and lead.version != 1:
        return f"{event.type} at version {lead.version}: a NEW lead is always version 1"
    if lead.version < MIN_VERSION[lead.status]:
        return (f"{event.type} at version {lead.version}: {lead.status} needs version "
                f"{MIN_VERSION[lead.status]} or more")
    if isinstance(event, LeadContacted):
        if lead.outreach is None or lead.outreach.step != event.step:
            found = lead.outreach.step if lead.outreach else None
            return f"{event.type} step {event.step} does not match the snapshot's step {found}"
        if lead.version < MIN_VERSION[S.ROUTED] + event.step:
            return (f"{event.type} step {event.step} at version {lead.version}: needs version "
                    f"{MIN_VERSION[S.ROUTED] + event.step} or more")
    try:
        _check_invariants(lead, event)
    except IllegalTransition as exc:
        return str(exc)
    return None


def apply(current: Lead | None, event: LeadEvent) -> Lead:
    """Fold one event into the lead's state; raise IllegalTransition if it does not follow."""
    check_transition(current, type(event))
    new = event.lead
    if new.status is not event.target:
        raise IllegalTransition(new.lead_id, current.status if current else None, event.type,
                                f"snapshot status {new.status} should be {event.target}")
    expected_version = 1 if current is None else current.version + 1
    if new.version != expected_version:
        raise IllegalTransition(new.lead_id, current.status if current else None, event.type,
                                f"version {new.version}, expected {expected_version}")
    if current is not None and new.lead_id != current.lead_id:
        raise IllegalTransition(current.lead_id, current.status, event.type,
                                f"snapshot belongs to lead {new.lead_id}")
    if isinstance(event, LeadContacted):
        previous_step = current.outreach.step if current and current.outreach else 0
        if event.step != previous_step + 1 or new.outreach is None or new.outreach.step != event.step:
            raise IllegalTransition(new.lead_id, current.status if current else None, event.type,
                                    f"step {event.step} does not follow step {previous_step}")
    _check_invariants(new, event)
    return new


def transition(
    cls: type[E],
    cause: LeadEvent,
    *,
    at: datetime,
    correlation_id: UUID | None,
    replay_id: str | None = None,
    current: Lead | None = None,
    recorded_at: datetime | None = None,
    cause_key: str | None = None,
    **fields: object,
) -> E:
    """Build the event that moves ``current`` (default: the cause's snapshot) by ``cls``.

    ``fields`` holds snapshot changes (score=..., route=...) and event fields (reasons=...).
    The id is derived from the cause (or ``cause_key``, e.g. a send's idempotency key), the
    transition and the replay, so a redelivered cause yields the same event.
    """
    base = current if current is not None else cause.lead
    check_transition(base, cls)
    names = _event_field_names(cls)
    event_fields: dict[str, Any] = {k: fields.pop(k) for k in list(fields) if k in names}
    lead = base.evolve(status=cls.target, version=base.version + 1, updated_at=at, **fields)
    return cls(
        event_id=ids.event_id(cause_key or cause.event_id, event_type(cls), replay_id),
        occurred_at=at,
        recorded_at=recorded_at or utcnow(),
        tenant_id=lead.tenant_id,
        correlation_id=correlation_id,
        causation_id=cause.event_id,
        replay_id=replay_id,
        lead=lead,
        **event_fields,
    )
