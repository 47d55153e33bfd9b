"""`leadflow contact export`: a campaign's leads, send attempts and a summary, as files.

Rendering is pure (rows -> text); ``campaign_files`` reads, ``write_files`` writes.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from . import controls, ledger, progress

LEAD_COLUMNS = ("lead_id", "tenant_id", "campaign_id", "sequence_id", "email", "step", "state",
                "next_action_at", "hold_reason", "stopped_reason", "last_error", "enrolled_at",
                "updated_at")
ATTEMPT_COLUMNS = ("idempotency_key", "lead_id", "step", "sequence_id", "status", "sender",
                   "email", "subject", "message_id", "attempts", "error", "resolution",
                   "decided_at", "claimed_at", "sent_at", "failed_at", "event_published")


#: A text cell starting with one of these is a formula to a spreadsheet (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    # Lead data comes from outside (imports, replies); a leading quote shows it as text.
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    out = io.StringIO()
    # CRLF rows (RFC 4180): the writer then also quotes a cell holding a bare CR.
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()


def summary_markdown(campaign_id: str, leads: Sequence[Mapping[str, Any]],
                     attempts: Sequence[Mapping[str, Any]], control: Mapping[str, Any],
                     generated_at: datetime) -> str:
    """summary.md: counts by state and status, sends per step, failures with their reasons."""
    states = Counter(str(r["state"]) for r in leads)
    statuses = Counter(str(r["status"]) for r in attempts)
    per_step = Counter(int(r["step"]) for r in attempts if r["status"] == "sent")
    paused = any(p["campaign_id"] == campaign_id for p in control.get("paused_campaigns", ()))
    lines = [
        f"# Outreach summary: campaign `{campaign_id}`", "",
        f"Generated {generated_at.isoformat()}.", "",
        f"- Leads: {len(leads)}",
        f"- Sends recorded: {statuses.get('sent', 0)}",
        f"- Failed steps: {statuses.get('failed', 0)}",
        f"- In flight or waiting (claimed / pending): "
        f"{statuses.get('claimed', 0)} / {statuses.get('pending', 0)}",
        f"- Campaign paused: {'yes' if paused else 'no'}; kill switch engaged: "
        f"{'yes' if control.get('kill_switch_engaged') else 'no'}", "",
        "## Leads by state", "", "| state | leads |", "|---|---|",
        *(f"| {s} | {n} |" for s, n in sorted(states.items())), "",
        "## Sends by step", "", "| step | sent |", "|---|---|",
        *(f"| {s} | {n} |" for s, n in sorted(per_step.items())), "",
    ]
    failures = [r for r in attempts if r["status"] == "failed"]
    if failures:
        lines += ["## Failed steps", "", "| lead | step | attempts | reason |", "|---|---|---|---|"]
        lines += [f"| {r['lead_id']} | {r['step']} | {r['attempts']} | "
                  f"{str(r['error'] or '').replace('|', '/')} |" for r in failures]
        lines.append("")
    return "\n".join(lines)


async def campaign_files(pool: asyncpg.Pool, campaign_id: str,
                         generated_at: datetime) -> dict[str, str]:
    """The text of leads.csv, attempts.csv and summary.md for ``campaign_id``."""
    lead_rows = [dict(r) for r in await progress.for_campaign(pool, campaign_id)]
    attempt_rows = [dict(r) for r in await ledger.for_campaign(pool, campaign_id)]
    control = await controls.summary(pool)
    return {
        "leads.csv": to_csv(lead_rows, LEAD_COLUMNS),
        "attempts.csv": to_csv(attempt_rows, ATTEMPT_COLUMNS),
        "summary.md": summary_markdown(campaign_id, lead_rows, attempt_rows, control, generated_at),
    }


def write_files(out: Path, files: Mapping[str, str]) -> list[Path]:
    """Write each file into ``out`` (created if missing); return the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in files.items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
