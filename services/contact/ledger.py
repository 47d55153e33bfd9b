"""Owner of contact_ledger and contact_windows: a send is claimed under its idempotency key
before it happens.

A key is claimed by one process at a time (``claim_token``); only that process may record the
send's outcome. A claim whose process died is reconciled (outbox.py), never blindly repeated.
Sends are recorded a window at a time, each window with a row in contact_windows until the
broker has acknowledged its LeadContacted events: recovery reads those rows.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import asyncpg

from ..runtime.db import Db


def idempotency_key(campaign_id: str, lead_id: UUID, step: int) -> str:
    """``campaign:lead:step``: one send per step of a lead in a campaign, ever."""
    return f"{campaign_id}:{lead_id}:{step}"


@dataclass(frozen=True, slots=True)
class Claim:
    key: str
    tenant_id: str
    campaign_id: str
    lead_id: UUID
    step: int
    sequence_id: str
    sender: str
    email: str
    subject: str
    message_id: str
    run_id: UUID
    cause_event_id: UUID
    decided_at: datetime
    claimed_by: str
    claim_token: UUID


@dataclass(frozen=True, slots=True)
class Entry:
    """A ledger row as the send path needs it."""

    key: str
    lead_id: UUID
    step: int
    status: str
    sender: str
    subject: str | None
    message_id: str | None
    run_id: UUID | None
    decided_at: datetime | None
    claimed_by: str | None
    claim_token: UUID | None
    attempts: int
    error: str | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Entry:
        return cls(row["idempotency_key"], row["lead_id"], row["step"], row["status"],
                   row["sender"], row["subject"], row["message_id"], row["run_id"],
                   row["decided_at"], row["claimed_by"], row["claim_token"], row["attempts"],
                   row["error"])


async def claim(db: Db, c: Claim) -> tuple[bool, Entry]:
    """Claim the key for a send: (True, row) if this call holds it now, else (False, the row).

    A new key or a 'pending' one (nothing in flight, nothing sent) can be claimed; any other
    status means the send happened, failed for good, or is in flight elsewhere.
    """
    return (await claim_many(db, [c]))[c.key]


async def claim_many(db: Db, claims: Sequence[Claim]) -> dict[str, tuple[bool, Entry]]:
    """``claim`` for many distinct keys of one run in one statement: key -> (claimed now, its
    row)."""
    if not claims:
        return {}
    first = claims[0]
    assert all((c.run_id, c.decided_at, c.claim_token) == (first.run_id, first.decided_at,
                                                           first.claim_token) for c in claims)
    rows = await db.fetch(
        """
        INSERT INTO contact_ledger AS l (idempotency_key, tenant_id, campaign_id, lead_id, step,
                                         sequence_id, status, sender, email, subject, message_id,
                                         run_id, cause_event_id, decided_at, claimed_by,
                                         claim_token, attempts)
        SELECT k, t, c, lid, st, sq, 'claimed', snd, e, sub, mid, $11, ce, $12, $13, $14, 1
        FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::int[], $6::text[],
                    $7::text[], $8::text[], $9::text[], $10::text[], $15::uuid[])
             AS u(k, t, c, lid, st, sq, snd, e, sub, mid, ce)
        ON CONFLICT (idempotency_key) DO UPDATE
        SET status = 'claimed', attempts = l.attempts + 1, sender = EXCLUDED.sender,
            subject = EXCLUDED.subject, run_id = EXCLUDED.run_id,
            cause_event_id = EXCLUDED.cause_event_id, decided_at = EXCLUDED.decided_at,
            claimed_by = EXCLUDED.claimed_by, claim_token = EXCLUDED.claim_token,
            claimed_at = now()
        WHERE l.status = 'pending'
        RETURNING idempotency_key, lead_id, step, status, sender, subject, message_id, run_id,
                  decided_at, claimed_by, claim_token, attempts, error
        """,
        [c.key for c in claims], [c.tenant_id for c in claims], [c.campaign_id for c in claims],
        [c.lead_id for c in claims], [c.step for c in claims], [c.sequence_id for c in claims],
        [c.sender for c in claims], [c.email for c in claims], [c.subject for c in claims],
        [c.message_id for c in claims], first.run_id, first.decided_at, first.claimed_by,
        first.claim_token, [c.cause_event_id for c in claims])
    out = {r["idempotency_key"]: (True, Entry.from_row(r)) for r in rows}
    others = [c.key for c in claims if c.key not in out]
    if others:
        for r in await db.fetch(
                """
                SELECT idempotency_key, lead_id, step, status, sender, subject, message_id, run_id,
                       decided_at, claimed_by, claim_token, attempts, error
                FROM contact_ledger WHERE idempotency_key = ANY($1::text[])
                """, others):
            out[r["idempotency_key"]] = (False, Entry.from_row(r))
    return out


#: Every row passes through 'claimed', so contact_ledger_status holds an entry for each past
#: claim until vacuum removes it, while the statistics count only the few claimed now: a plan
#: reading the window through it grew with the ledger (~100 µs per send at 50,000 leads).
#: IS NOT DISTINCT FROM (status is NOT NULL: the same test) is no index condition, so the
#: window's rows are found by their keys. The window's row is written by the same statement.
MARK_SENT = """
    WITH marked AS (
        UPDATE contact_ledger AS l
        SET status = 'sent', sent_at = now(), provider_id = u.p, error = NULL
        FROM unnest($1::text[], $2::text[]) AS u(k, p)
        WHERE l.idempotency_key = u.k AND l.status IS NOT DISTINCT FROM 'claimed'
          AND l.claim_token = $3
        RETURNING l.idempotency_key),
    opened AS (
        INSERT INTO contact_windows (window_id, claimed_by, claim_token, keys)
        SELECT $4, $5, $3, array_agg(idempotency_key) FROM marked HAVING count(*) > 0)
    SELECT idempotency_key FROM marked
    """


async def mark_sent_many(db: Db, token: UUID, sent: Sequence[tuple[str, str | None]], *,
                         window_id: UUID, claimed_by: str) -> set[str]:
    """Record (key, provider id) pairs sent under our claim, as the window ``window_id`` whose
    LeadContacted events are still to be reported; returns the keys recorded."""
    if not sent:
        return set()
    rows = await db.fetch(MARK_SENT, [k for k, _ in sent], [p for _, p in sent], token,
                          window_id, claimed_by)
    return {r["idempotency_key"] for r in rows}


async def release_many(db: Db, keys: Sequence[str], token: UUID) -> None:
    """``release`` without an error (held back before sending) for many keys."""
    if keys:
        await db.execute(
            """
            UPDATE contact_ledger SET status = 'pending', attempts = GREATEST(attempts - 1, 0)
            WHERE idempotency_key = ANY($1::text[]) AND status IS NOT DISTINCT FROM 'claimed'
              AND claim_token = $2
            """, list(keys), token)  # IS NOT DISTINCT FROM: by key, as MARK_SENT says


async def release(db: Db, key: str, token: UUID, *, error: str | None = None) -> None:
    """Give a claim back without a send: 'pending' again. ``error``: a send was tried and failed
    transiently (it counts as an attempt); None: held back before sending (it does not)."""
    await db.execute(
        """
        UPDATE contact_ledger
        SET status = 'pending', error = COALESCE($3, error),
            attempts = CASE WHEN $3::text IS NULL THEN GREATEST(attempts - 1, 0) ELSE attempts END
        WHERE idempotency_key = $1 AND status = 'claimed' AND claim_token = $2
        """, key, token, error)


async def mark_failed(db: Db, key: str, token: UUID, error: str) -> None:
    """Give up on this step for good (the send was refused, or retries are spent)."""
    await db.execute(
        """
        UPDATE contact_ledger SET status = 'failed', error = $3, failed_at = now()
        WHERE idempotency_key = $1 AND status IN ('claimed', 'pending')
          AND (claim_token = $2 OR status = 'pending')
        """, key, token, error)


async def abandoned(db: Db, instance_id: str, token: UUID, stale_after: timedelta) -> list[Entry]:
    """Claims whose process is gone: this instance's earlier lives, or any claim gone stale."""
    rows = await db.fetch(
        """
        SELECT idempotency_key, lead_id, step, status, sender, subject, message_id, run_id,
                  decided_at, claimed_by, claim_token, attempts, error
        FROM contact_ledger
        WHERE status = 'claimed'
          AND ((claimed_by = $1 AND claim_token IS DISTINCT FROM $2) OR claimed_at < now() - $3::interval)
        ORDER BY claimed_at
        """, instance_id, token, stale_after)
    return [Entry.from_row(r) for r in rows]


async def resolve(db: Db, entry: Entry, status: str, resolution: str,
                  error: str | None = None) -> bool:
    """Settle an abandoned claim as 'sent', 'pending' or 'failed'; False if someone else did.
    A send settled as 'sent' gets a window of its own, under the claim that made it, so that
    recovery reports it."""
    done = await db.fetchval(
        """
        WITH settled AS (
            UPDATE contact_ledger
            SET status = $3, resolution = $4, error = COALESCE($5, error),
                sent_at = CASE WHEN $3 = 'sent' THEN now() ELSE sent_at END,
                failed_at = CASE WHEN $3 = 'failed' THEN now() ELSE failed_at END
            WHERE idempotency_key = $1 AND status = 'claimed'
              AND claim_token IS NOT DISTINCT FROM $2
            RETURNING idempotency_key, claimed_by, claim_token, status),
        opened AS (
            INSERT INTO contact_windows (window_id, claimed_by, claim_token, keys)
            SELECT gen_random_uuid(), claimed_by, claim_token, ARRAY[idempotency_key]
            FROM settled WHERE status = 'sent')
        SELECT true FROM settled
        """, entry.key, entry.claim_token, status, resolution, error)
    return bool(done)


async def unreported(db: Db, instance_id: str, token: UUID,
                     stale_after: timedelta) -> dict[UUID, list[Entry]]:
    """Windows of sends whose LeadContacted may not be in the log, left by a process now gone
    (this instance's earlier lives, or any window gone stale): window id -> its sends."""
    rows = await db.fetch(
        """
        SELECT w.window_id, l.idempotency_key, l.lead_id, l.step, l.status, l.sender, l.subject,
               l.message_id, l.run_id, l.decided_at, l.claimed_by, l.claim_token, l.attempts,
               l.error
        FROM contact_windows w
             CROSS JOIN LATERAL unnest(w.keys) AS k(key)
             JOIN contact_ledger l ON l.idempotency_key = k.key
        WHERE (w.claimed_by = $1 AND w.claim_token IS DISTINCT FROM $2)
           OR w.sent_at < now() - $3::interval
        ORDER BY w.sent_at, w.window_id, l.idempotency_key
        """, instance_id, token, stale_after)
    windows: dict[UUID, list[Entry]] = {}
    for r in rows:
        windows.setdefault(r["window_id"], []).append(Entry.from_row(r))
    return windows


async def close_windows(db: Db, window_ids: Collection[UUID]) -> None:
    """Record that the LeadContacted events of these windows' sends are in the log."""
    if window_ids:
        await db.execute("DELETE FROM contact_windows WHERE window_id = ANY($1::uuid[])",
                         list(window_ids))


async def for_campaign(db: Db, campaign_id: str) -> list[asyncpg.Record]:
    """Every ledger row of a campaign, oldest first (for exports). ``event_published``: the
    send's LeadContacted is in the log, as the lead's progress (moved on by it) shows."""
    return await db.fetch(
        """
        SELECT l.idempotency_key, l.tenant_id, l.campaign_id, l.lead_id, l.step, l.sequence_id,
               l.status, l.sender, l.email, l.subject, l.message_id, l.provider_id, l.attempts,
               l.error, l.resolution, l.decided_at, l.claimed_at, l.sent_at, l.failed_at,
               l.status = 'sent' AND COALESCE(c.step >= l.step, false) AS event_published
        FROM contact_ledger l LEFT JOIN contact_leads c ON c.lead_id = l.lead_id
        WHERE l.campaign_id = $1 ORDER BY l.claimed_at, l.lead_id, l.step
        """, campaign_id)


async def failures(db: Db, campaign_id: str | None, limit: int) -> list[asyncpg.Record]:
    """Steps given up for good, newest first, with the reason."""
    return await db.fetch(
        """
        SELECT idempotency_key, tenant_id, campaign_id, lead_id, step, email, sender, attempts,
               error, resolution, failed_at
        FROM contact_ledger
        WHERE status = 'failed' AND ($1::text IS NULL OR campaign_id = $1)
        ORDER BY failed_at DESC NULLS LAST, idempotency_key LIMIT $2
        """, campaign_id, limit)


async def status_counts(db: Db, campaign_id: str | None) -> dict[str, int]:
    rows = await db.fetch(
        """
        SELECT status, count(*) AS n FROM contact_ledger
        WHERE $1::text IS NULL OR campaign_id = $1 GROUP BY status
        """, campaign_id)
    return {r["status"]: r["n"] for r in rows}
