"""The baseline: the cron-over-Postgres way users run their pipelines today, with leadflow's own
decisions (services/<stage>/decide.py, contact's policy and templates) so only the shape differs.

The leads sit in one table. Jobs run in sequence (score, qualify, route, contact); each claims a
batch of leads in its input status (``FOR UPDATE SKIP LOCKED``, so a second copy of the job
would take other rows) and then updates each lead in its own transaction. Route keeps a counter
row per segment, contact a sends table keyed by ``campaign:lead:step``, as such scripts do. The
tables live in a schema of their own, created and dropped by the benchmark.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import asyncpg
from rich.console import Console

from events import Lead, LeadStatus, utcnow

from ..contact.ledger import idempotency_key
from ..contact.policy import outreach_after
from ..contact.templates import compose, message_id
from ..pipeline.config import LeadflowConfig
from ..pipeline.settings import Settings
from ..qualify.decide import qualify_lead
from ..route.config import Segment
from ..route.decide import assign, pick_segment
from ..runtime.db import open_connection, quote_ident
from ..score.decide import score_lead
from .leads import chunks, progress_bar
from .workspace import STAGE_JOBS

BATCH = 500
S = LeadStatus

#: job -> the status it takes leads from.
INPUT = {"score": S.NEW, "qualify": S.SCORED, "route": S.QUALIFIED, "contact": S.ROUTED}

_DDL = """
CREATE TABLE leads (lead_id uuid PRIMARY KEY, status text NOT NULL,
                    claimed boolean NOT NULL DEFAULT false, lead jsonb NOT NULL);
CREATE INDEX leads_status ON leads (status);
CREATE TABLE route_counters (tenant_id text NOT NULL, segment text NOT NULL,
                             next_seq bigint NOT NULL, PRIMARY KEY (tenant_id, segment));
CREATE TABLE sends (idempotency_key text PRIMARY KEY, lead_id uuid NOT NULL, step int NOT NULL,
                    subject text NOT NULL, message_id text NOT NULL, sent_at timestamptz NOT NULL);
"""

_CLAIM = """
UPDATE leads SET claimed = true WHERE lead_id IN (
    SELECT lead_id FROM leads WHERE status = $1 AND NOT claimed LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING lead
"""
_SAVE = "UPDATE leads SET status = $2, lead = $3, claimed = false WHERE lead_id = $1"
_NEXT_SEQ = """
INSERT INTO route_counters (tenant_id, segment, next_seq) VALUES ($1, $2, 1)
ON CONFLICT (tenant_id, segment) DO UPDATE SET next_seq = route_counters.next_seq + 1
RETURNING next_seq - 1
"""
_SEND = """
INSERT INTO sends (idempotency_key, lead_id, step, subject, message_id, sent_at)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING
"""


@dataclass(frozen=True, slots=True)
class BaselineRun:
    """Leads taken from import to their final status, and the seconds each step took."""

    leads: int
    seconds: dict[str, float]  # "import" and each job

    @property
    def rate(self) -> float:
        total = sum(self.seconds.values())
        return self.leads / total if total else 0.0


def scored(lead: Lead, config: LeadflowConfig, at: datetime) -> Lead:
    """The lead after the score job."""
    return _moved(lead, S.SCORED, at, score=score_lead(lead, config.score))


def qualified(lead: Lead, config: LeadflowConfig, at: datetime) -> Lead:
    """The lead after the qualify job: QUALIFIED, or REJECTED with its reasons."""
    outcome = qualify_lead(lead, config.qualify)
    return _moved(lead, S.QUALIFIED if outcome.qualified else S.REJECTED, at,
                  qualification=outcome)


def routed(lead: Lead, segment: Segment, seq: int, at: datetime) -> Lead:
    """The lead after the route job: the ``seq``-th lead of its segment."""
    return _moved(lead, S.ROUTED, at, route=assign(segment, seq))


def contacted(lead: Lead, config: LeadflowConfig, at: datetime) -> tuple[Lead, list[Any]]:
    """The lead after step 1 of its sequence was sent, and the sends row recording it."""
    assert lead.route is not None
    sequence = config.contact.sequences[lead.route.sequence_id]
    key = idempotency_key(lead.campaign_id, lead.lead_id, 1)
    message = compose(sequence.steps[0], lead, message_id=message_id(
        key, config.contact.from_address), list_unsubscribe=config.contact.list_unsubscribe)
    row = [key, lead.lead_id, 1, message.subject, message.message_id, at]
    return _moved(lead, S.CONTACTED, at, outreach=outreach_after(
        lead.route.sequence_id, sequence, 1, at)), row


def _moved(lead: Lead, status: LeadStatus, at: datetime, **changes: object) -> Lead:
    return lead.evolve(status=status, version=lead.version + 1, updated_at=at, **changes)


async def _one(conn: asyncpg.Connection, job: str, lead: Lead, config: LeadflowConfig,
               at: datetime) -> None:
    """One lead, in its own transaction."""
    async with conn.transaction():
        if job == "score":
            new = scored(lead, config, at)
        elif job == "qualify":
            new = qualified(lead, config, at)
        elif job == "route":
            segment = pick_segment(lead, config.route.segments)
            seq = await conn.fetchval(_NEXT_SEQ, lead.tenant_id, segment.name)
            new = routed(lead, segment, seq, at)
        else:
            new, send = contacted(lead, config, at)
            # Proof mode, as leadflow's contact runs here: the sends row is the send. A key
            # already there was sent before, so the row stays as it was.
            await conn.execute(_SEND, *send)
        await conn.execute(_SAVE, new.lead_id, new.status.value, new.model_dump_json().encode())


async def run_job(conn: asyncpg.Connection, job: str, config: LeadflowConfig,
                  advance: Callable[[int], object]) -> None:
    """Claim batches of the job's input status until none is left; each lead its own update."""
    at = utcnow()  # a cron job's decision time: when it started
    while True:
        async with conn.transaction():
            batch = await conn.fetch(_CLAIM, INPUT[job].value, BATCH)
        if not batch:
            return
        for row in batch:
            await _one(conn, job, Lead.model_validate(row["lead"]), config, at)
        advance(len(batch))


async def baseline_run(settings: Settings, n: int, say: Console) -> BaselineRun:
    """Load ``n`` leads into a fresh table, run every job over them in turn, drop the tables."""
    schema = f"leadflow_bench_baseline_{uuid.uuid4().hex[:8]}"
    conn = await open_connection(settings.database_url)
    seconds: dict[str, float] = {}
    try:
        await conn.execute(f"CREATE SCHEMA {quote_ident(schema)}")
        await conn.execute(f"SET search_path TO {quote_ident(schema)}")
        await conn.execute(_DDL)
        with progress_bar(say) as progress:
            task = progress.add_task(f"baseline: importing {n:,} leads", total=n)
            started = time.monotonic()
            for chunk in chunks(n):
                await conn.copy_records_to_table(
                    "leads", schema_name=schema, columns=("lead_id", "status", "lead"),
                    records=[(e.lead.lead_id, e.lead.status.value,
                              e.lead.model_dump_json().encode()) for e in chunk])
                progress.advance(task, len(chunk))
            seconds["import"] = time.monotonic() - started
            for job in (j.value for j in STAGE_JOBS):
                waiting = await conn.fetchval("SELECT count(*) FROM leads WHERE status = $1",
                                              INPUT[job].value)
                task = progress.add_task(f"baseline: {job}", total=waiting)
                started = time.monotonic()
                await run_job(conn, job, settings.pipeline,
                              partial(progress.advance, task))
                seconds[job] = time.monotonic() - started
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
        await conn.close()
    result = BaselineRun(n, seconds)
    say.print(f"baseline: {n:,} leads through {len(STAGE_JOBS)} cron jobs in "
              f"{sum(seconds.values()):.2f}s ({result.rate:,.0f} leads/s)")
    return result
