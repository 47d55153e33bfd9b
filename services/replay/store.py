"""Owner of replays, replay_positions and replay_leads (schemas/sql/007_replays.sql)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from uuid import UUID

import asyncpg

from ..runtime.db import Db, open_connection
from ..runtime.locks import advisory_key, try_lock
from .errors import ReplayError


@dataclass(slots=True)
class Counts:
    """What a replay did so far (see the columns of ``replays``)."""

    events_read: int = 0
    replayed: int = 0
    unchanged: int = 0
    kept: int = 0
    in_flight: int = 0
    missing: int = 0
    failed: int = 0
    skipped: int = 0

    def add(self, other: Counts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


COUNT_COLUMNS = tuple(f.name for f in fields(Counts))


@dataclass(slots=True)
class Range:
    """A partition's part of a replay: offsets [start, end), read up to ``next``."""

    topic: str
    partition: int
    start: int
    end: int
    next: int

    @property
    def done(self) -> bool:
        return self.next >= self.end


@dataclass(slots=True)
class Replay:
    replay_id: str
    stage: str
    from_at: datetime
    to_at: datetime | None
    tenant_id: str | None
    status: str
    decided_at: datetime
    requested_by: str | None = None
    error: str | None = None
    counts: Counts = field(default_factory=Counts)
    started_at: datetime | None = None
    completed_at: datetime | None = None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Replay:
        return cls(row["replay_id"], row["stage"], row["from_at"], row["to_at"], row["tenant_id"],
                   row["status"], row["decided_at"], row["requested_by"], row["error"],
                   Counts(**{c: row[c] for c in COUNT_COLUMNS}), row["started_at"],
                   row["completed_at"])


async def create(db: asyncpg.Pool, replay: Replay, ranges: Sequence[Range]) -> None:
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            """
            INSERT INTO replays (replay_id, stage, from_at, to_at, tenant_id, status, decided_at,
                                 requested_by)
            VALUES ($1, $2, $3, $4, $5, 'running', $6, $7)
            """,
            replay.replay_id, replay.stage, replay.from_at, replay.to_at, replay.tenant_id,
            replay.decided_at, replay.requested_by)
        await conn.executemany(
            """
            INSERT INTO replay_positions (replay_id, topic, partition, start_offset, end_offset,
                                          next_offset)
            VALUES ($1, $2, $3, $4, $5, $6)
            """, [(replay.replay_id, r.topic, r.partition, r.start, r.end, r.next) for r in ranges])


async def get(db: Db, replay_id: str) -> Replay | None:
    row = await db.fetchrow("SELECT * FROM replays WHERE replay_id = $1", replay_id)
    return Replay.from_row(row) if row else None


async def find_open(db: Db, stage: str, from_at: datetime, to_at: datetime | None,
                    tenant_id: str | None) -> Replay | None:
    """The unfinished replay of the same request, if any (re-running a command resumes it)."""
    row = await db.fetchrow(
        """
        SELECT * FROM replays
        WHERE stage = $1 AND from_at = $2 AND to_at IS NOT DISTINCT FROM $3
          AND tenant_id IS NOT DISTINCT FROM $4 AND status <> 'completed'
        ORDER BY started_at DESC LIMIT 1
        """, stage, from_at, to_at, tenant_id)
    return Replay.from_row(row) if row else None


async def ranges(db: Db, replay_id: str) -> list[Range]:
    rows = await db.fetch(
        """
        SELECT topic, partition, start_offset, end_offset, next_offset FROM replay_positions
        WHERE replay_id = $1 ORDER BY topic, partition
        """, replay_id)
    return [Range(r["topic"], r["partition"], r["start_offset"], r["end_offset"],
                  r["next_offset"]) for r in rows]


async def decided(db: Db, replay_id: str, lead_ids: Sequence[UUID]) -> set[UUID]:
    """Which of ``lead_ids`` this replay has decided already."""
    if not lead_ids:
        return set()
    rows = await db.fetch(
        "SELECT lead_id FROM replay_leads WHERE replay_id = $1 AND lead_id = ANY($2::uuid[])",
        replay_id, list(lead_ids))
    return {r["lead_id"] for r in rows}


async def record(db: asyncpg.Pool, replay_id: str, positions: Sequence[Range], counts: Counts,
                 lead_ids: Sequence[UUID]) -> None:
    """One batch done (its outputs acknowledged): positions, counts and decided leads together."""
    assignments = ", ".join(f"{c} = {c} + ${i}" for i, c in enumerate(COUNT_COLUMNS, start=2))
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            f"UPDATE replays SET {assignments}, updated_at = now() WHERE replay_id = $1",  # noqa: S608
            replay_id, *[getattr(counts, c) for c in COUNT_COLUMNS])
        await conn.execute(
            """
            UPDATE replay_positions AS p SET next_offset = u.next
            FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u(topic, partition, next)
            WHERE p.replay_id = $1 AND p.topic = u.topic AND p.partition = u.partition
              AND p.next_offset < u.next
            """, replay_id, [r.topic for r in positions], [r.partition for r in positions],
            [r.next for r in positions])
        if lead_ids:
            await conn.execute(
                """
                INSERT INTO replay_leads (replay_id, lead_id)
                SELECT $1, l FROM unnest($2::uuid[]) AS l ON CONFLICT DO NOTHING
                """, replay_id, list(lead_ids))


async def finish(db: asyncpg.Pool, replay_id: str, status: str, error: str | None = None) -> None:
    """Mark the replay completed (its decided-lead list is no longer needed) or failed."""
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            """
            UPDATE replays SET status = $2, error = $3, updated_at = now(),
                completed_at = CASE WHEN $2 = 'completed' THEN now() ELSE completed_at END
            WHERE replay_id = $1
            """, replay_id, status, error)
        if status == "completed":
            await conn.execute("DELETE FROM replay_leads WHERE replay_id = $1", replay_id)


async def resume(db: Db, replay_id: str) -> None:
    await db.execute("UPDATE replays SET status = 'running', error = NULL, updated_at = now() "
                     "WHERE replay_id = $1", replay_id)


async def recent(db: Db, limit: int = 5) -> list[Replay]:
    rows = await db.fetch("SELECT * FROM replays ORDER BY started_at DESC LIMIT $1", limit)
    return [Replay.from_row(r) for r in rows]


async def hold_stage(dsn: str, prefix: str, stage: str) -> asyncpg.Connection:
    """One replay per stage at a time: a lock held on a connection the caller closes."""
    conn = await open_connection(dsn)
    key = advisory_key("replay", prefix, stage)
    if not await try_lock(conn, key):
        await conn.close()
        raise ReplayError(f"another replay of {stage} is running; wait for it to finish (or stop "
                          "it: an interrupted replay resumes later where it stopped)")
    return conn
