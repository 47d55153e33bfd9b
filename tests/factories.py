"""Factories for test data: leads, source files, events."""

from __future__ import annotations

import csv
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from events import Lead, LeadCreated, LeadStatus, ids

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
