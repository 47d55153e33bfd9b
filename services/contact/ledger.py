"""Owner of contact_ledger: a send is claimed under its idempotency key before it happens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg


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
    run_id: UUID
    cause_event_id: UUID


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    status: str
    sent_at: datetime | None
    event_published: bool
    attempts: int


async def claim(pool: asyncpg.Pool, claims: Sequence[Claim]) -> set[str]:
    """Insert a 'claimed' row per send; return the keys this call claimed (new rows only)."""
    if not claims:
        return set()
    rows = await pool.fetch(
        """
        INSERT INTO contact_ledger (idempotency_key, tenant_id, campaign_id, lead_id, step,
                                    sequence_id, status, sender, email, subject, run_id,
                                    cause_event_id, attempts)
        SELECT k, t, c, l, s, q, 'claimed', snd, e, subj, r, ce, 1
        FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[], $5::int[], $6::text[],
                    $7::text[], $8::text[], $9::text[], $10::uuid[], $11::uuid[])
             AS u(k, t, c, l, s, q, snd, e, subj, r, ce)
        ON CONFLICT DO NOTHING
        RETURNING idempotency_key
        """,
        [c.key for c in claims], [c.tenant_id for c in claims], [c.campaign_id for c in claims],
        [c.lead_id for c in claims], [c.step for c in claims], [c.sequence_id for c in claims],
        [c.sender for c in claims], [c.email for c in claims], [c.subject for c in claims],
        [c.run_id for c in claims], [c.cause_event_id for c in claims],
    )
    return {r["idempotency_key"] for r in rows}


async def entries(pool: asyncpg.Pool, keys: Sequence[str]) -> dict[str, Entry]:
    if not keys:
        return {}
    rows = await pool.fetch(
        """
        SELECT idempotency_key, status, sent_at, event_published_at IS NOT NULL AS published,
               attempts
        FROM contact_ledger WHERE idempotency_key = ANY($1::text[])
        """, list(keys))
    return {r["idempotency_key"]: Entry(r["idempotency_key"], r["status"], r["sent_at"],
                                        r["published"], r["attempts"]) for r in rows}


async def mark_sent(pool: asyncpg.Pool, sent: dict[str, str | None]) -> None:
    """Record successful sends (key -> provider message id)."""
    if sent:
        await pool.execute(
            """
            UPDATE contact_ledger AS l SET status = 'sent', sent_at = now(), error = NULL
            FROM unnest($1::text[]) AS u(k)
            WHERE l.idempotency_key = u.k AND l.status <> 'sent'
            """, list(sent))


async def mark_failed(pool: asyncpg.Pool, key: str, error: str) -> None:
    await pool.execute(
        "UPDATE contact_ledger SET status = 'failed', error = $2 WHERE idempotency_key = $1",
        key, error)


async def mark_published(pool: asyncpg.Pool, keys: Sequence[str]) -> None:
    """Record that the LeadContacted of these sends is in the log (no need to emit it again)."""
    if keys:
        await pool.execute(
            """
            UPDATE contact_ledger SET event_published_at = now()
            WHERE idempotency_key = ANY($1::text[]) AND event_published_at IS NULL
            """, list(keys))
