"""Leads as the read models hold them now: the snapshot a replay moves from, and where the event
that made it sits in the log. Read-only over the projector's tables (schema leadflow_read)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
from aiokafka import TopicPartition

from events import Assignment, Lead, LeadStatus, Outreach, Qualification, ScoreCard

from ..projector.store import stored_offsets


@dataclass(frozen=True, slots=True)
class Current:
    """A lead's current snapshot; ``position`` and ``replay_id`` are those of its last event
    (None once retention pruned that event)."""

    lead: Lead
    position: tuple[str, int, int] | None
    replay_id: str | None


def lead_from_row(row: Mapping[str, Any], source: str | None) -> Lead:
    """The snapshot a ``leads`` row stores (``source`` is not a column: it never changes after
    the lead is created, so the replayed input's value is used)."""
    score = (ScoreCard(value=row["score"], factors=dict(row["score_factors"] or {}),
                       model_version=row["model_version"] or "")
             if row["score"] is not None else None)
    qualification = (Qualification(qualified=row["qualified"], reasons=tuple(row["reasons"] or ()))
                     if row["qualified"] is not None else None)
    route = (Assignment(segment=row["segment"], sequence_id=row["sequence_id"] or "",
                        owner=row["owner"] or "")
             if row["segment"] is not None else None)
    outreach = (Outreach(sequence_id=row["sequence_id"] or "", step=row["contact_step"],
                         last_contacted_at=row["last_contacted_at"],
                         next_action_at=row["next_action_at"])
                if row["contact_step"] and row["last_contacted_at"] is not None else None)
    return Lead(
        lead_id=row["lead_id"], tenant_id=row["tenant_id"], campaign_id=row["campaign_id"],
        email=row["email"], first_name=row["first_name"], last_name=row["last_name"],
        title=row["title"], company=row["company"], domain=row["domain"],
        industry=row["industry"], employees=row["employees"], country=row["country"],
        source=source, do_not_contact=row["do_not_contact"], status=LeadStatus(row["status"]),
        version=row["version"], score=score, qualification=qualification, route=route,
        outreach=outreach, created_at=row["created_at"], updated_at=row["updated_at"],
    )


async def load(db: asyncpg.Pool, sources: Mapping[UUID, str | None]) -> dict[UUID, Current]:
    """Current snapshots of the leads in ``sources`` (lead id -> its source); unknown leads
    are absent. ``db``'s search_path is the live read-model schema."""
    if not sources:
        return {}
    rows = await db.fetch(
        """
        SELECT l.*, e.topic AS last_topic, e.partition AS last_partition,
               e."offset" AS last_offset, e.replay_id AS last_replay_id
        FROM leads l LEFT JOIN lead_events e
          ON (e.lead_id, e.version, e.event_id) = (l.lead_id, l.version, l.last_event_id)
        WHERE l.lead_id = ANY($1::uuid[])
        """, list(sources))
    found: dict[UUID, Current] = {}
    for row in rows:
        position = ((row["last_topic"], row["last_partition"], row["last_offset"])
                    if row["last_topic"] is not None else None)
        found[row["lead_id"]] = Current(lead_from_row(row, sources[row["lead_id"]]), position,
                                        row["last_replay_id"])
    return found


async def projector_lag(db: asyncpg.Pool, highs: Mapping[TopicPartition, int]) -> int:
    """Messages of these partitions the projector has not folded yet."""
    async with db.acquire() as conn:
        stored = await stored_offsets(conn)
    return sum(max(0, high - stored.get((tp.topic, tp.partition), 0)) for tp, high in highs.items())


def lead_topics_partitions(topics: Sequence[str], counts: Mapping[str, int]) -> list[TopicPartition]:
    return [TopicPartition(t, p) for t in topics for p in range(counts.get(t, 0))]
