"""Owner of the control tables: pauses, kill switches, suppressions, unsubscribes, replies.

Only the contact service's control feed writes them (``apply``), each batch in one transaction
with the offsets it consumed, so every control event is applied exactly once. Tenant '*'
applies to every tenant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from events import (
    ALL_TENANTS,
    CampaignPaused,
    CampaignResumed,
    ControlEvent,
    KillSwitchChanged,
    Lead,
    LeadReplied,
    LeadUnsubscribed,
    SuppressionAdded,
    SuppressionRemoved,
)

from ..runtime.db import Db
from . import progress
from .policy import ControlSnapshot, domain_and_parents, domain_of, normal_email


@dataclass(frozen=True, slots=True)
class Positioned:
    """A control event and its place in the log (None: undecodable, it only moves the offset)."""

    topic: str
    partition: int
    offset: int
    event: ControlEvent | None


async def offsets(db: Db, topic: str) -> dict[int, int]:
    """Next offset to apply per partition of the control topic."""
    rows = await db.fetch(
        "SELECT partition, next_offset FROM contact_control_offsets WHERE topic = $1", topic)
    return {r["partition"]: r["next_offset"] for r in rows}


async def apply(pool: asyncpg.Pool, batch: Sequence[Positioned]) -> dict[int, int]:
    """Apply a batch (events at or past the stored offsets only) and store the new offsets.

    Returns the partition -> next offset now stored. Safe to call from several instances.
    """
    if not batch:
        return {}
    topic = batch[0].topic
    async with pool.acquire() as conn, conn.transaction():
        # Row locks serialise instances applying the same partition.
        for partition in sorted({p.partition for p in batch}):
            await conn.execute(
                """
                INSERT INTO contact_control_offsets (topic, partition, next_offset)
                VALUES ($1, $2, 0) ON CONFLICT DO NOTHING
                """, topic, partition)
        rows = await conn.fetch(
            """
            SELECT partition, next_offset FROM contact_control_offsets
            WHERE topic = $1 AND partition = ANY($2::int[]) FOR UPDATE
            """, topic, sorted({p.partition for p in batch}))
        stored = {r["partition"]: r["next_offset"] for r in rows}
        for item in batch:
            if item.offset < stored[item.partition]:
                continue  # applied already (by us before a restart, or by another instance)
            if item.event is not None:
                await _apply_one(conn, item.event)
            stored[item.partition] = item.offset + 1
        await conn.executemany(
            "UPDATE contact_control_offsets SET next_offset = $3 WHERE topic = $1 AND partition = $2",
            [(topic, p, o) for p, o in stored.items()])
    return stored


async def _apply_one(conn: asyncpg.Connection, event: ControlEvent) -> None:
    at, who = event.occurred_at, event.requested_by
    if isinstance(event, CampaignPaused):
        await conn.execute(
            """
            INSERT INTO contact_pauses (tenant_id, campaign_id, paused, requested_by, changed_at)
            VALUES ($1, $2, true, $3, $4)
            ON CONFLICT (tenant_id, campaign_id)
            DO UPDATE SET paused = true, requested_by = $3, changed_at = $4
            """, event.tenant_id, event.campaign_id, who, at)
    elif isinstance(event, CampaignResumed):
        # Resuming for every tenant ('*') lifts every pause of the campaign.
        await conn.execute(
            """
            UPDATE contact_pauses SET paused = false, requested_by = $3, changed_at = $4
            WHERE campaign_id = $2 AND ($1 = '*' OR tenant_id = $1)
            """, event.tenant_id, event.campaign_id, who, at)
    elif isinstance(event, KillSwitchChanged):
        await conn.execute(
            """
            INSERT INTO contact_kill_switches (tenant_id, engaged, reason, requested_by, changed_at)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (tenant_id)
            DO UPDATE SET engaged = $2, reason = $3, requested_by = $4, changed_at = $5
            """, event.tenant_id, event.engaged, event.reason, who, at)
    elif isinstance(event, SuppressionAdded):
        for kind, value in _suppression_values(event.email, event.domain):
            await conn.execute(
                """
                INSERT INTO contact_suppressions (tenant_id, kind, value, reason, requested_by,
                                                  added_at)
                VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (tenant_id, kind, value)
                DO UPDATE SET reason = $4, requested_by = $5, added_at = $6
                """, event.tenant_id, kind, value, event.reason, who, at)
    elif isinstance(event, SuppressionRemoved):
        for kind, value in _suppression_values(event.email, event.domain):
            await conn.execute(
                "DELETE FROM contact_suppressions WHERE tenant_id = $1 AND kind = $2 AND value = $3",
                event.tenant_id, kind, value)
    elif isinstance(event, LeadUnsubscribed):
        await conn.execute(
            """
            INSERT INTO contact_unsubscribes (tenant_id, email, lead_id, unsubscribed_at)
            VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, email) DO NOTHING
            """, event.tenant_id, normal_email(event.email), event.lead_id, at)
        if event.lead_id is not None:
            await progress.stop(conn, event.lead_id, "unsubscribed")
    elif isinstance(event, LeadReplied):
        await conn.execute(
            """
            INSERT INTO contact_replies (lead_id, tenant_id, replied_at) VALUES ($1, $2, $3)
            ON CONFLICT (lead_id) DO NOTHING
            """, event.lead_id, event.tenant_id, at)
        await progress.stop(conn, event.lead_id, "replied")


def _suppression_values(email: str | None, domain: str | None) -> list[tuple[str, str]]:
    values = []
    if email:
        values.append(("email", normal_email(email)))
    if domain:
        values.append(("domain", domain.strip().lower().strip(".")))
    return values


async def snapshot(db: Db, leads: Sequence[Lead]) -> ControlSnapshot:
    """Every control row that bears on sending to ``leads``, in one query."""
    emails = sorted({normal_email(lead.email) for lead in leads})
    domains = sorted({d for lead in leads for d in domain_and_parents(domain_of(lead.email))})
    row = await db.fetchrow(
        """
        SELECT
          ARRAY(SELECT tenant_id FROM contact_kill_switches WHERE engaged) AS kill_switches,
          ARRAY(SELECT ARRAY[tenant_id, campaign_id] FROM contact_pauses WHERE paused) AS pauses,
          ARRAY(SELECT ARRAY[tenant_id, kind, value] FROM contact_suppressions
                WHERE (kind = 'email' AND value = ANY($1::text[]))
                   OR (kind = 'domain' AND value = ANY($2::text[]))) AS suppressions,
          ARRAY(SELECT ARRAY[tenant_id, email] FROM contact_unsubscribes
                WHERE email = ANY($1::text[])) AS unsubscribes,
          ARRAY(SELECT lead_id FROM contact_replies WHERE lead_id = ANY($3::uuid[])) AS replies
        """, emails, domains, [lead.lead_id for lead in leads])
    assert row is not None
    return ControlSnapshot(
        kill_switches=frozenset(row["kill_switches"]),
        pauses=frozenset((t, c) for t, c in row["pauses"]),
        suppressions=frozenset((t, k, v) for t, k, v in row["suppressions"]),
        unsubscribes=frozenset((t, e) for t, e in row["unsubscribes"]),
        replies=frozenset(row["replies"]))


async def tick_block(db: Db, tenant_id: str, campaign_id: str | None) -> str | None:
    """Why a whole run must be skipped: the kill switch, or its campaign paused (None: run)."""
    row = await db.fetchrow(
        """
        SELECT
          EXISTS (SELECT 1 FROM contact_kill_switches
                  WHERE tenant_id = ANY($1::text[]) AND engaged) AS kill_switch,
          $2::text IS NOT NULL AND EXISTS (
            SELECT 1 FROM contact_pauses
            WHERE campaign_id = $2 AND paused AND tenant_id = ANY($1::text[])) AS paused
        """, sorted({tenant_id, ALL_TENANTS}), campaign_id)
    assert row is not None
    if row["kill_switch"]:
        return "kill switch engaged"
    if row["paused"]:
        return f"campaign {campaign_id} paused"
    return None


async def paused_campaigns(db: Db, tenant_id: str) -> list[str]:
    """Campaigns paused for every tenant or for ``tenant_id`` ('*': paused anywhere, for every
    tenant only)."""
    rows = await db.fetch(
        "SELECT DISTINCT campaign_id FROM contact_pauses WHERE paused AND tenant_id = ANY($1::text[])",
        sorted({tenant_id, ALL_TENANTS}))
    return [r["campaign_id"] for r in rows]


async def summary(db: Db, tenant_id: str | None = None) -> dict[str, Any]:
    """Control state for the dashboard: pauses, kill switches, suppression and opt-out counts."""
    pauses = await db.fetch(
        """
        SELECT tenant_id, campaign_id, requested_by, changed_at FROM contact_pauses
        WHERE paused AND ($1::text IS NULL OR tenant_id IN ($1, '*')) ORDER BY changed_at DESC
        """, tenant_id)
    switches = await db.fetch(
        """
        SELECT tenant_id, engaged, reason, requested_by, changed_at FROM contact_kill_switches
        WHERE $1::text IS NULL OR tenant_id IN ($1, '*') ORDER BY tenant_id
        """, tenant_id)
    counts = await db.fetchrow(
        """
        SELECT
          (SELECT count(*) FROM contact_suppressions
           WHERE kind = 'email' AND ($1::text IS NULL OR tenant_id IN ($1, '*'))) AS emails,
          (SELECT count(*) FROM contact_suppressions
           WHERE kind = 'domain' AND ($1::text IS NULL OR tenant_id IN ($1, '*'))) AS domains,
          (SELECT count(*) FROM contact_unsubscribes
           WHERE $1::text IS NULL OR tenant_id IN ($1, '*')) AS unsubscribes,
          (SELECT count(*) FROM contact_replies
           WHERE $1::text IS NULL OR tenant_id IN ($1, '*')) AS replies
        """, tenant_id)
    assert counts is not None
    return {
        "paused_campaigns": [dict(r) for r in pauses],
        "kill_switches": [dict(r) for r in switches],
        "kill_switch_engaged": any(r["engaged"] for r in switches),
        "suppressed_emails": counts["emails"], "suppressed_domains": counts["domains"],
        "unsubscribes": counts["unsubscribes"], "replies": counts["replies"],
    }
