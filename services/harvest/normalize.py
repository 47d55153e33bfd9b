"""Turning a source row into a new lead, or into a reason it cannot be one. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from events import Lead, LeadCreated, LeadStatus, ids, utcnow
from events.emails import email_problem, normalise_email
from events.text import control_problem

#: Accepted column names per lead field (compared after lower-casing and trimming).
ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("email", "e-mail", "email_address", "work_email"),
    "first_name": ("first_name", "firstname", "first name", "given_name"),
    "last_name": ("last_name", "lastname", "last name", "surname", "family_name"),
    "title": ("title", "job_title", "job title", "position"),
    "company": ("company", "company_name", "organization", "organisation", "account"),
    "domain": ("domain", "website", "company_domain", "url"),
    "industry": ("industry", "sector", "vertical"),
    "employees": ("employees", "employee_count", "company_size", "headcount", "size"),
    "country": ("country", "country_code", "location_country"),
    "do_not_contact": ("do_not_contact", "dnc", "opt_out"),
}

_COUNTRY_NAMES = {
    "united states": "US", "usa": "US", "united states of america": "US", "canada": "CA",
    "united kingdom": "GB", "uk": "GB", "great britain": "GB", "england": "GB", "germany": "DE",
    "france": "FR", "netherlands": "NL", "the netherlands": "NL", "sweden": "SE",
    "australia": "AU", "spain": "ES", "italy": "IT", "ireland": "IE", "india": "IN",
}
_RANGE = re.compile(r"^\s*(\d[\d,]*)\s*(?:-|\u2013|to)\s*(\d[\d,]*)\s*$")
_PLUS = re.compile(r"^\s*(\d[\d,]*)\s*\+\s*$")
_TRUE = {"1", "true", "yes", "y", "x"}


@dataclass(frozen=True, slots=True)
class RowError:
    """A source row that cannot become a lead: where it is and why."""

    source: str
    line: int
    reason: str
    raw: str


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def pick(row: dict[str, Any]) -> dict[str, str | None]:
    """Map a row's columns onto lead fields through ALIASES (first non-empty wins)."""
    lowered = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    return {
        field: next((t for name in names if (t := _text(lowered.get(name))) is not None), None)
        for field, names in ALIASES.items()
    }


def parse_employees(text: str | None) -> int | None:
    """``250``, ``1,200``, ``51-200`` (lower bound) or ``1000+``; ValueError otherwise."""
    if text is None:
        return None
    cleaned = text.replace(",", "").strip()
    if cleaned.isdigit():
        return int(cleaned)
    if match := _RANGE.match(text):
        return int(match.group(1).replace(",", ""))
    if match := _PLUS.match(text):
        return int(match.group(1).replace(",", ""))
    raise ValueError(f"employees {text!r} is not a number, a range like 51-200, or 1000+")


def parse_country(text: str | None) -> str | None:
    if text is None:
        return None
    if len(text) == 2 and text.isalpha():
        return text.upper()
    return _COUNTRY_NAMES.get(text.lower(), text)


def parse_domain(text: str | None, email: str) -> str:
    """The company domain: the given website without scheme, www. or path; else the email's."""
    if text:
        host = re.sub(r"^[a-z]+://", "", text.strip().lower()).split("/")[0].split(":")[0]
        host = host.removeprefix("www.")
        if "." in host:
            return host
    return email.rpartition("@")[2]


def normalise_row(row: dict[str, Any], *, tenant_id: str, campaign_id: str, source: str,
                  at: datetime) -> Lead:
    """Build the NEW lead for one row; ValueError says why the row is not a lead."""
    return read_lead(row, tenant_id=tenant_id, campaign_id=campaign_id, source=source, at=at)[0]


def read_lead(row: dict[str, Any], *, tenant_id: str, campaign_id: str, source: str,
              at: datetime) -> tuple[Lead, tuple[str, ...]]:
    """The NEW lead for one row and what was not understood in it (kept as unknown);
    ValueError says why the row cannot be a lead at all."""
    fields = pick(row)
    for name, value in fields.items():
        if value is not None and (problem := control_problem(value, name)):
            raise ValueError(problem)
    if fields["email"] is None:
        raise ValueError("email is missing")
    email = normalise_email(fields["email"])
    if problem := email_problem(email):
        raise ValueError(problem)
    warnings: list[str] = []
    try:
        employees = parse_employees(fields["employees"])
    except ValueError as exc:  # a size nobody can read is unknown, not a reason to lose the lead
        employees = None
        warnings.append(f"{exc}; recorded as unknown")
    lead = Lead(
        lead_id=ids.lead_id(tenant_id, email),
        tenant_id=tenant_id,
        campaign_id=campaign_id,
        email=email,
        first_name=fields["first_name"],
        last_name=fields["last_name"],
        title=fields["title"],
        company=fields["company"],
        domain=parse_domain(fields["domain"], email),
        industry=fields["industry"].lower() if fields["industry"] else None,
        employees=employees,
        country=parse_country(fields["country"]),
        source=source,
        do_not_contact=(fields["do_not_contact"] or "").lower() in _TRUE,
        status=LeadStatus.NEW,
        version=1,
        created_at=at,
        updated_at=at,
    )
    return lead, tuple(warnings)


def lead_created(lead: Lead, *, line: int | None, run_id: UUID | None,
                 recorded_at: datetime | None = None) -> LeadCreated:
    """The LeadCreated event for a new lead; its id depends only on the lead, so re-imports
    of the same person anywhere yield the same event."""
    return LeadCreated(
        event_id=ids.event_id(lead.lead_id, "lead.created"),
        occurred_at=lead.created_at,
        recorded_at=recorded_at or utcnow(),
        tenant_id=lead.tenant_id,
        correlation_id=run_id,
        causation_id=run_id,
        lead=lead,
        source_line=line,
    )
