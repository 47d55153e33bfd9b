"""Control events an operator or a recipient publishes (CLI and HTTP build them here). Pure."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict
from uuid import UUID

from events import (
    ALL_TENANTS,
    CampaignPaused,
    CampaignResumed,
    ControlEvent,
    KillSwitchChanged,
    LeadReplied,
    LeadUnsubscribed,
    SuppressionAdded,
    SuppressionRemoved,
    ids,
    utcnow,
)


class _ControlFields(TypedDict):
    event_id: UUID
    occurred_at: datetime
    recorded_at: datetime
    tenant_id: str
    requested_by: str


def _envelope(tenant_id: str, requested_by: str) -> _ControlFields:
    now = utcnow()
    return _ControlFields(event_id=uuid.uuid4(), occurred_at=now, recorded_at=now,
                          tenant_id=tenant_id, requested_by=requested_by)


def pause(campaign_id: str, *, requested_by: str, tenant_id: str = ALL_TENANTS) -> CampaignPaused:
    return CampaignPaused(**_envelope(tenant_id, requested_by), campaign_id=campaign_id)


def resume(campaign_id: str, *, requested_by: str, tenant_id: str = ALL_TENANTS) -> CampaignResumed:
    return CampaignResumed(**_envelope(tenant_id, requested_by), campaign_id=campaign_id)


def kill_switch(engaged: bool, *, requested_by: str, tenant_id: str = ALL_TENANTS,
                reason: str | None = None) -> KillSwitchChanged:
    return KillSwitchChanged(**_envelope(tenant_id, requested_by), engaged=engaged, reason=reason)


def lead_ref(lead: str, tenant_id: str) -> UUID:
    """A lead given as its id, or as its email (then the id follows from tenant and email)."""
    try:
        return UUID(lead)
    except ValueError:
        if "@" not in lead:
            raise ValueError(f"{lead!r} is neither a lead id (uuid) nor an email") from None
        if tenant_id == ALL_TENANTS:
            raise ValueError("a lead given by email needs its tenant: pass --tenant") from None
        return ids.lead_id(tenant_id, lead)


def reply(lead: str, *, requested_by: str, tenant_id: str) -> LeadReplied:
    return LeadReplied(**_envelope(tenant_id, requested_by), lead_id=lead_ref(lead, tenant_id))


def unsubscribe(email: str, *, requested_by: str, tenant_id: str = ALL_TENANTS,
                lead_id: UUID | None = None) -> LeadUnsubscribed:
    if "@" not in email:
        raise ValueError(f"{email!r} is not an email address")
    return LeadUnsubscribed(**_envelope(tenant_id, requested_by), email=email.strip().lower(),
                            lead_id=lead_id)


def suppression(*, email: str | None = None, domain: str | None = None, requested_by: str,
                tenant_id: str = ALL_TENANTS, reason: str | None = None,
                remove: bool = False) -> SuppressionAdded | SuppressionRemoved:
    if not email and not domain:
        raise ValueError("give an email or a domain to suppress")
    if email and "@" not in email:
        raise ValueError(f"{email!r} is not an email address")
    email = email.strip().lower() if email else None
    domain = domain.strip().lower().lstrip("@") if domain else None
    if remove:
        return SuppressionRemoved(**_envelope(tenant_id, requested_by), email=email, domain=domain)
    return SuppressionAdded(**_envelope(tenant_id, requested_by), email=email, domain=domain,
                            reason=reason)


@dataclass(frozen=True, slots=True)
class CsvProblem:
    line: int
    reason: str


def suppressions_from_csv(text: str, *, requested_by: str, tenant_id: str = ALL_TENANTS,
                          ) -> tuple[list[ControlEvent], list[CsvProblem]]:
    """SuppressionAdded per row of a CSV with an ``email`` and/or ``domain`` column (and an
    optional ``reason``); rows that are not usable are reported by line."""
    reader = csv.DictReader(io.StringIO(text))
    columns = {c.strip().lower() for c in reader.fieldnames or ()}
    if not columns & {"email", "domain"}:
        return [], [CsvProblem(1, "the header needs an 'email' or a 'domain' column")]
    events: list[ControlEvent] = []
    problems: list[CsvProblem] = []
    for number, row in enumerate(reader, start=2):
        cells = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        try:
            events.append(suppression(email=cells.get("email") or None,
                                      domain=cells.get("domain") or None,
                                      reason=cells.get("reason") or None,
                                      requested_by=requested_by, tenant_id=tenant_id))
        except ValueError as exc:
            problems.append(CsvProblem(number, str(exc)))
    return events, problems
