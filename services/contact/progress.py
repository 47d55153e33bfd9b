"""Owner of contact_leads: each routed lead's progress through its sequence.

The row keeps the last lead event the contact stage knows, so a follow-up can be built from
it (version + 1), and ``next_action_at``, so a tick can find what is due.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from events import LeadEvent, decode, encode

from ..runtime.db import Db


@dataclass(frozen=True, slots=True)
class Progress:
    """One lead's outreach state; ``step`` is the last step sent (0: none)."""

    lead_id: UUID
    tenant_id: str
    campaign_id: str
    step: int
    state: str
    next_action_at: datetime | None
    last_run_id: UUID | None
    last_event: LeadEvent

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Progress:
        event = decode(row["last_event"])
        assert isinstance(event, LeadEvent)
        return cls(row["lead_id"], row["tenant_id"], row["campaign_id"], row["step"],
                   row["state"], row["next_action_at"], row["last_run_id"], event)


async def enroll(db: Db, events: Sequence[LeadEvent], due_at: datetime,
                 partitions: Sequence[int | None] | None = None,
                 payloads: Sequence[bytes] | None = None) -> set[UUID]:
    """Start progress for routed leads (due at ``due_at``); a lead already enrolled is kept.
    Returns the leads enrolled now.

    ``payloads``: each event's JSON as read from the log, stored as is rather than encoded
    again (contact spent a tenth of its CPU encoding events).

    ``partitions``: the leads.routed partition each came from; the instance that owns that
    partition runs the lead's follow-ups, so two instances never work on one lead."""
    if not events:
        return set()
    rows = await db.fetch(
        """
        INSERT INTO contact_leads (lead_id, tenant_id, campaign_id, sequence_id, email,
                                   last_event, next_action_at, source_partition)
        SELECT l, t, c, s, e, ev, $7, p
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $8::int[]) AS u(l, t, c, s, e, ev, p)
        ON CONFLICT (lead_id) DO NOTHING
        RETURNING lead_id
        """,
        [e.lead.lead_id for e in events], [e.lead.tenant_id for e in events],
        [e.lead.campaign_id for e in events],
        [e.lead.route.sequence_id if e.lead.route else "" for e in events],
        [e.lead.email for e in events],
        [p.decode() for p in (payloads if payloads is not None else map(encode, events))], due_at,
        list(partitions) if partitions is not None else [None] * len(events))
    return {r["lead_id"] for r in rows}


@dataclass(frozen=True, slots=True)
class _Enrolment:
    event: LeadEvent
    due_at: datetime
    partition: int | None
    payload: bytes  # the routed event as read from the log
    run_id: UUID


class Unwritten:
    """Routed leads read from the log whose row is not written yet.

    A lead sent at once gets its row from its first step's ``advance`` (one write instead of an
    enrolment and an update); any other write to a lead's row enrols it first (``write``).
    Either happens before the lead's offset is committed, so a crash in between only means the
    lead is read again: the ledger then knows what was sent."""

    def __init__(self) -> None:
        self._leads: dict[UUID, _Enrolment] = {}

    def add(self, events: Sequence[LeadEvent], due_at: datetime, run_id: UUID,
            partitions: Sequence[int | None], payloads: Sequence[bytes]) -> None:
        """Hold these leads' enrolments (those of an earlier run were never needed: dropped)."""
        self._leads = {k: v for k, v in self._leads.items() if v.run_id == run_id}
        for event, partition, payload in zip(events, partitions, payloads, strict=True):
            self._leads[event.lead.lead_id] = _Enrolment(event, due_at, partition, payload, run_id)

    def partitions(self, lead_ids: Sequence[UUID]) -> dict[UUID, int | None]:
        """The partitions of those of ``lead_ids`` held here, no longer held: their
        ``advance`` writes their rows."""
        return {lead_id: e.partition for lead_id in lead_ids
                if (e := self._leads.pop(lead_id, None)) is not None}

    async def write(self, db: Db, lead_ids: Sequence[UUID]) -> None:
        """Enrol those of ``lead_ids`` held here (their rows are about to be read or changed)."""
        taken = [e for lead_id in lead_ids if (e := self._leads.pop(lead_id, None)) is not None]
        for due_at in sorted({e.due_at for e in taken}):
            group = [e for e in taken if e.due_at == due_at]
            await enroll(db, [e.event for e in group], due_at, [e.partition for e in group],
                         [e.payload for e in group])


def enrolled(event: LeadEvent, due_at: datetime) -> Progress:
    """The progress ``enroll`` just wrote for ``event`` (no need to read it back)."""
    lead = event.lead
    return Progress(lead.lead_id, lead.tenant_id, lead.campaign_id, 0, "active", due_at, None,
                    event)


async def fetch(db: Db, lead_ids: Sequence[UUID]) -> dict[UUID, Progress]:
    if not lead_ids:
        return {}
    rows = await db.fetch("""
        SELECT lead_id, tenant_id, campaign_id, step, state, next_action_at, last_run_id, last_event
        FROM contact_leads WHERE lead_id = ANY($1::uuid[])
        """, list(lead_ids))
    return {r["lead_id"]: Progress.from_row(r) for r in rows}


async def due(db: Db, *, at: datetime, run_id: UUID, tenant_id: str | None,
              campaign_id: str | None, skip_campaigns: Sequence[str], limit: int,
              partitions: Sequence[int] | None = None) -> list[Progress]:
    """Active leads due by ``at`` that this run has not looked at yet, oldest due first.

    ``partitions``: only leads enrolled from these leads.routed partitions (and leads enrolled
    before partitions were recorded); None: every lead."""
    rows = await db.fetch(
        """
        SELECT lead_id, tenant_id, campaign_id, step, state, next_action_at, last_run_id, last_event
        FROM contact_leads
        WHERE state = 'active' AND next_action_at <= $1
          AND last_run_id IS DISTINCT FROM $2
          AND ($3::text IS NULL OR tenant_id = $3)
          AND ($4::text IS NULL OR campaign_id = $4)
          AND NOT (campaign_id = ANY($5::text[]))
          AND ($7::int[] IS NULL OR source_partition IS NULL OR source_partition = ANY($7::int[]))
        ORDER BY next_action_at, lead_id
        LIMIT $6
        """, at, run_id, tenant_id, campaign_id, list(skip_campaigns), limit,
        list(partitions) if partitions is not None else None)
    return [Progress.from_row(r) for r in rows]


@dataclass(frozen=True, slots=True)
class Advance:
    """A sent step, reported by ``event`` (``value``: its bytes as published): the lead's
    progress moves to it."""

    event: LeadEvent
    value: bytes
    step: int
    next_action_at: datetime | None

    @property
    def completed(self) -> bool:
        return self.next_action_at is None


async def advance(db: Db, moves: Sequence[Advance], run_id: UUID | None,
                  partitions: Mapping[UUID, int | None] | None = None) -> None:
    """Record that each step was sent and reported (a step already recorded is left alone).
    A lead without a row gets it here, enrolled at the step sent; ``partitions``: the
    leads.routed partition of each such lead."""
    if not moves:
        return
    partitions = partitions or {}
    firsts: dict[UUID, Advance] = {}
    for m in moves:  # one row per lead: an upsert may not touch a row twice
        firsts.setdefault(m.event.lead.lead_id, m)
    moves = list(firsts.values())
    leads = [m.event.lead for m in moves]
    await db.execute(
        """
        INSERT INTO contact_leads AS c (lead_id, tenant_id, campaign_id, sequence_id, email,
                                        last_event, step, state, stopped_reason, next_action_at,
                                        last_run_id, source_partition)
        SELECT l, t, cm, s, e, ev, st, CASE WHEN done THEN 'completed' ELSE 'active' END,
               CASE WHEN done THEN 'completed' END, nx, $11, p
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::int[], $8::timestamptz[], $9::bool[], $10::int[])
             AS u(l, t, cm, s, e, ev, st, nx, done, p)
        ON CONFLICT (lead_id) DO UPDATE
        SET step = EXCLUDED.step, last_event = EXCLUDED.last_event,
            next_action_at = EXCLUDED.next_action_at,
            state = CASE WHEN EXCLUDED.state = 'completed' THEN 'completed' ELSE c.state END,
            stopped_reason = CASE WHEN EXCLUDED.state = 'completed' THEN 'completed'
                                  ELSE c.stopped_reason END,
            hold_reason = NULL, last_error = NULL, last_run_id = COALESCE($11, c.last_run_id),
            updated_at = now()
        WHERE c.step = EXCLUDED.step - 1
        """, [lead.lead_id for lead in leads], [lead.tenant_id for lead in leads],
        [lead.campaign_id for lead in leads],
        [lead.route.sequence_id if lead.route else "" for lead in leads],
        [lead.email for lead in leads], [m.value.decode() for m in moves],
        [m.step for m in moves], [m.next_action_at for m in moves],
        [m.completed for m in moves], [partitions.get(lead.lead_id) for lead in leads], run_id)


@dataclass(frozen=True, slots=True)
class Hold:
    """Why a lead was not sent this run, and when it is due again (None: as soon as a later
    run looks, e.g. after a resume)."""

    lead_id: UUID
    reason: str
    until: datetime | None = None


async def hold(db: Db, holds: Sequence[Hold], run_id: UUID) -> None:
    """The leads stay due: not sent this run, each for its reason, due again at its ``until``."""
    if not holds:
        return
    await db.execute(
        """
        UPDATE contact_leads AS c
        SET hold_reason = u.reason, last_run_id = $4,
            next_action_at = GREATEST(c.next_action_at, COALESCE(u.until, c.next_action_at)),
            updated_at = now()
        FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS u(lead_id, reason, until)
        WHERE c.lead_id = u.lead_id AND c.state = 'active'
        """, [h.lead_id for h in holds], [h.reason for h in holds], [h.until for h in holds],
        run_id)


async def retry_at(db: Db, lead_id: UUID, when: datetime, error: str, run_id: UUID) -> None:
    """A transient failure: the same step is due again at ``when``."""
    await db.execute(
        """
        UPDATE contact_leads
        SET next_action_at = $2, last_error = $3, hold_reason = 'retry', last_run_id = $4,
            updated_at = now()
        WHERE lead_id = $1 AND state = 'active'
        """, lead_id, when, error, run_id)


async def stop(db: Db, lead_id: UUID, reason: str) -> None:
    """End the lead's sequence for good (reply, unsubscribe, suppression, do-not-contact)."""
    await db.execute(
        """
        UPDATE contact_leads
        SET state = 'stopped', stopped_reason = $2, next_action_at = NULL, updated_at = now()
        WHERE lead_id = $1 AND state = 'active'
        """, lead_id, reason)


async def fail(db: Db, lead_id: UUID, step: int, reason: str) -> None:
    """Mark the lead failed at ``step`` with the reason; its sequence ends."""
    await db.execute(
        """
        UPDATE contact_leads
        SET state = 'failed', stopped_reason = 'failed', last_error = $3,
            next_action_at = NULL, updated_at = now()
        WHERE lead_id = $1 AND state = 'active' AND step = $2 - 1
        """, lead_id, step, reason)


async def touch(db: Db, lead_ids: Sequence[UUID], run_id: UUID) -> None:
    """Note that this run looked at the leads (so none is picked twice in one run)."""
    if lead_ids:
        await db.execute(
            "UPDATE contact_leads SET last_run_id = $2 WHERE lead_id = ANY($1::uuid[])",
            list(lead_ids), run_id)


async def for_campaign(db: Db, campaign_id: str) -> list[asyncpg.Record]:
    """Every lead of a campaign with its progress (for exports)."""
    return await db.fetch(
        """
        SELECT lead_id, tenant_id, campaign_id, sequence_id, email, step, state, next_action_at,
               hold_reason, stopped_reason, last_error, enrolled_at, updated_at
        FROM contact_leads WHERE campaign_id = $1 ORDER BY enrolled_at, lead_id
        """, campaign_id)


async def state_counts(db: Db, campaign_id: str | None) -> dict[str, int]:
    rows = await db.fetch(
        """
        SELECT state, count(*) AS n FROM contact_leads
        WHERE $1::text IS NULL OR campaign_id = $1 GROUP BY state
        """, campaign_id)
    return {r["state"]: r["n"] for r in rows}


async def held(db: Db, campaign_id: str | None, limit: int) -> list[asyncpg.Record]:
    """Active leads that waited at their last look, and why (quota, paused, retry...)."""
    return await db.fetch(
        """
        SELECT lead_id, tenant_id, campaign_id, step, next_action_at, hold_reason, last_error
        FROM contact_leads
        WHERE state = 'active' AND hold_reason IS NOT NULL
          AND ($1::text IS NULL OR campaign_id = $1)
        ORDER BY next_action_at, lead_id LIMIT $2
        """, campaign_id, limit)
