"""Owner of dlq_replays; reads the dead_letters read model (the projector owns that table).

The connection's search_path must name the read-model schema first (dead_letters) and public
(dlq_replays), as a pool made with ``search_path=READ_SCHEMA`` does.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg


@dataclass(frozen=True, slots=True)
class LetterFilter:
    """Which dead letters: each field narrows the set; None leaves it open."""

    topic: str | None = None  # the physical topic the original was read from
    reason: str | None = None  # a substring of the error type or message (any case)
    stage: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    ids: tuple[UUID, ...] = ()
    limit: int = 50


@dataclass(frozen=True, slots=True)
class Letter:
    """One dead letter as the read model holds it, with its replay (if any)."""

    event_id: UUID
    recorded_at: datetime
    stage: str | None
    origin: str
    error_type: str
    error: str
    attempts: int
    tenant_id: str
    payload: dict[str, Any]
    replayed_at: datetime | None

    @property
    def source_topic(self) -> str | None:
        return self.payload.get("source_topic")

    @property
    def original(self) -> bytes:
        return base64.b64decode(self.payload.get("original") or "")


async def letters(conn: asyncpg.Pool | asyncpg.Connection, where: LetterFilter) -> list[Letter]:
    """Dead letters matching ``where``, oldest first (the order they would be replayed in)."""
    rows = await conn.fetch(
        """
        SELECT d.event_id, d.recorded_at, d.stage, d.origin, d.error_type, d.error, d.attempts,
               d.tenant_id, d.payload, r.replayed_at
        FROM dead_letters d LEFT JOIN dlq_replays r USING (event_id)
        WHERE ($1::text IS NULL OR d.payload->>'source_topic' = $1)
          AND ($2::text IS NULL OR strpos(lower(d.error_type || ': ' || d.error), lower($2)) > 0)
          AND ($3::text IS NULL OR d.stage = $3)
          AND ($4::timestamptz IS NULL OR d.recorded_at >= $4)
          AND ($5::timestamptz IS NULL OR d.recorded_at < $5)
          AND (cardinality($6::uuid[]) = 0 OR d.event_id = ANY($6::uuid[]))
        ORDER BY d.recorded_at, d.event_id
        LIMIT $7
        """, where.topic, where.reason, where.stage, where.since, where.until, list(where.ids),
        where.limit)
    return [Letter(**dict(r)) for r in rows]


async def by_prefix(conn: asyncpg.Pool | asyncpg.Connection, prefix: str) -> list[UUID]:
    """Ids of the dead letters whose id starts with ``prefix`` (as `dlq list` shows them)."""
    rows = await conn.fetch("SELECT event_id FROM dead_letters WHERE event_id::text LIKE $1 "
                            "ORDER BY event_id LIMIT 2", prefix.lower() + "%")
    return [r["event_id"] for r in rows]


async def record_replayed(conn: asyncpg.Pool | asyncpg.Connection, event_id: UUID, topic: str,
                          requested_by: str) -> None:
    await conn.execute(
        "INSERT INTO dlq_replays (event_id, topic, requested_by) VALUES ($1, $2, $3) "
        "ON CONFLICT (event_id) DO UPDATE SET replayed_at = now(), topic = EXCLUDED.topic, "
        "requested_by = EXCLUDED.requested_by", event_id, topic, requested_by)
