"""Factories for test data: leads, source files, events."""

from __future__ import annotations

import csv
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from events import (
    Assignment,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobName,
    JobSkipped,
    JobStarted,
    Lead,
    LeadContacted,
    LeadCreated,
    LeadEvent,
    LeadQualified,
    LeadRejected,
    LeadRouted,
    LeadScored,
    LeadStatus,
    Outreach,
    Qualification,
    RunCounts,
    RunInfo,
    ScoreCard,
    TickSource,
    ids,
    transition,
)
from events.ids import job_event_id

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

INDUSTRIES = ["software", "saas", "fintech", "healthcare", "manufacturing", "retail", "media",
              "education", "logistics", "financial services"]
SIZES = ["1-10", "11-50", "51-200", "201-500", "501-1000", "1001-5000", "5000+", "35", "120", ""]
COUNTRIES = ["US", "CA", "GB", "DE", "FR", "NL", "SE", "AU", "BR", "IN", "United States", ""]
TITLES = ["CEO", "CTO", "VP of Sales", "Head of Growth", "Director of Marketing",
          "Engineering Manager", "Sales Lead", "Account Executive", "Software Engineer", "Founder",
          "Chief Revenue Officer", "Analyst", ""]


def lead_factory(**overrides: Any) -> Lead:
    """A NEW lead with sensible defaults; any field can be overridden."""
    email = overrides.pop("email", f"lead{uuid.uuid4().hex[:8]}@example.com")
    tenant = overrides.pop("tenant_id", "acme")
    fields: dict[str, Any] = dict(
        lead_id=ids.lead_id(tenant, email), tenant_id=tenant, campaign_id="q4", email=email,
        first_name="Ada", last_name="Lovelace", title="CTO", company="Analytical Engines",
        domain=email.rpartition("@")[2], industry="software", employees=250, country="GB",
        source="factory", status=LeadStatus.NEW, version=1, created_at=NOW, updated_at=NOW,
    )
    fields.update(overrides)
    return Lead(**fields)


def created_event(lead: Lead | None = None, **overrides: Any) -> LeadCreated:
    lead = lead or lead_factory(**overrides)
    return LeadCreated(event_id=ids.event_id(lead.lead_id, "lead.created"), occurred_at=NOW,
                       recorded_at=NOW, tenant_id=lead.tenant_id, lead=lead)


def source_rows(n: int, seed: int = 1) -> list[dict[str, str]]:
    """``n`` varied, valid rows with distinct emails."""
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        company = f"Company{rnd.randint(1, n // 3 + 1)}"
        rows.append({
            "email": f"person{i}@{company.lower()}.com",
            "first_name": f"First{i}", "last_name": f"Last{i}",
            "title": rnd.choice(TITLES), "company": company if rnd.random() > 0.03 else "",
            "industry": rnd.choice(INDUSTRIES), "employees": rnd.choice(SIZES),
            "country": rnd.choice(COUNTRIES),
        })
    return rows


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    columns = list(rows[0]) if rows else ["email"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


CARD = ScoreCard(value=70, factors={"industry": 30, "employees": 20, "country": 20, "seniority": 0},
                 model_version="t")
ROUTE = Assignment(segment="smb", sequence_id="standard", owner="finn")


def step(cls: type[LeadEvent], cause: LeadEvent, **fields: object) -> LeadEvent:
    """Build ``cls`` from ``cause`` with the fields its target status needs."""
    needs: dict[type[LeadEvent], dict[str, object]] = {
        LeadScored: {"score": CARD},
        LeadQualified: {"qualification": Qualification(qualified=True)},
        LeadRejected: {"qualification": Qualification(qualified=False, reasons=("x",)),
                       "reasons": ("x",)},
        LeadRouted: {"route": ROUTE},
    }
    if cls is LeadContacted:
        n = (cause.lead.outreach.step if cause.lead.outreach else 0) + 1
        needs[cls] = {"outreach": Outreach(sequence_id="standard", step=n, last_contacted_at=NOW),
                      "step": n, "idempotency_key": f"c:{cause.lead.lead_id}:{n}", "sender": "proof",
                      "cause_key": f"c:{cause.lead.lead_id}:{n}"}
    return transition(cls, cause, at=NOW, correlation_id=None, **{**needs.get(cls, {}), **fields})


def happy_path(lead: Lead | None = None) -> list[LeadEvent]:
    """A lead's events from NEW to CONTACTED step 2, as the stages write them."""
    events: list[LeadEvent] = [created_event(lead)]
    for cls in (LeadScored, LeadQualified, LeadRouted, LeadContacted, LeadContacted):
        events.append(step(cls, events[-1]))
    return events


def run_events(job: JobName, outcome: str, *, at: datetime, tenant: str = "acme",
               counts: tuple[int, int, int] = (0, 0, 0), seconds: float = 1.0,
               part: str = "a", partitions: tuple[int, ...] = (0, 1, 2), total: int = 3,
               run_id: uuid.UUID | None = None) -> list[JobEvent]:
    """job.started + the outcome for one part of one run."""
    run_id = run_id or uuid.uuid4()
    info = RunInfo(scheduled_for=at, source=TickSource.SCHEDULE)
    common = dict(occurred_at=at, recorded_at=at, tenant_id=tenant, run_id=run_id, job=job,
                  part=part, run=info)
    started = JobStarted(event_id=job_event_id(run_id, part, "started"), started_at=at, **common)
    if outcome == "skipped":
        return [JobSkipped(event_id=job_event_id(run_id, part, "skipped"), reason="overlap",
                           **common)]
    done = dict(started_at=at, completed_at=at + timedelta(seconds=seconds),
                duration_seconds=seconds, partitions=partitions, partitions_total=total,
                counts=RunCounts(leads_processed=counts[0], leads_succeeded=counts[1],
                                 leads_failed=counts[2]), **common)
    if outcome == "completed":
        end: JobEvent = JobCompleted(event_id=job_event_id(run_id, part, "completed"), **done)
    else:
        end = JobFailed(event_id=job_event_id(run_id, part, "failed"), reason="error",
                        error="database gone", **done)
    return [started, end]
