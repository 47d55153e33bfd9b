"""The clock's tables (schemas/sql/005_clock.sql): cursors, ticks, retries, outcomes, pauses.

All of the clock's SQL lives here; callers pass a connection or a pool.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from events import TickEmitted, TickSource

from ..runtime.db import Db as Conn
from .retries import RetryRow

Key = tuple[str, str]

# --- cursors and ticks ----------------------------------------------------------------------

_CURSORS = """
SELECT job, scope, max(last) AS last FROM (
    SELECT job, scope, last_scheduled_for AS last FROM clock_cursors
    UNION ALL
    SELECT job, scope, max(scheduled_for) FROM clock_ticks
    WHERE source = ANY($1::text[]) GROUP BY job, scope
) AS known GROUP BY job, scope
"""

_SAVE_CURSOR = """
INSERT INTO clock_cursors (job, scope, last_scheduled_for) VALUES ($1, $2, $3)
ON CONFLICT (job, scope) DO UPDATE
SET last_scheduled_for = GREATEST(clock_cursors.last_scheduled_for, EXCLUDED.last_scheduled_for),
    updated_at = now()
"""

_INSERT_TICK = """
INSERT INTO clock_ticks (tick_id, job, scope, tenant_id, campaign_id, scheduled_for, source,
                         max_leads, requested_by, retry_of, attempt, recorded_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (tick_id) DO NOTHING
"""

#: Sources whose ticks advance a schedule's cursor.
SCHEDULED_SOURCES = (TickSource.SCHEDULE.value, TickSource.CATCHUP.value)


async def load_cursors(conn: Conn) -> dict[Key, datetime]:
    """Per (job, scope): the last handled occurrence, from the cursors and the recorded ticks."""
    rows = await conn.fetch(_CURSORS, list(SCHEDULED_SOURCES))
    return {(r["job"], r["scope"]): r["last"] for r in rows}


def _tick_args(tick: TickEmitted) -> tuple[Any, ...]:
    return (tick.tick_id, tick.job.value, tick.scope, tick.tenant_id, tick.campaign_id,
            tick.scheduled_for, tick.source.value, tick.max_leads, tick.requested_by,
            tick.retry_of, tick.attempt, tick.recorded_at)


async def record_ticks(conn: Conn, ticks: Iterable[TickEmitted]) -> None:
    """Remember ticks that are on the log (a repeated id is a no-op)."""
    args = [_tick_args(t) for t in ticks]
    if args:
        await conn.executemany(_INSERT_TICK, args)


async def record_emitted(pool: asyncpg.Pool, key: Key, cursor: datetime,
                         ticks: Sequence[TickEmitted]) -> None:
    """After publishing: the ticks and the schedule's new cursor, in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        await record_ticks(conn, ticks)
        await conn.execute(_SAVE_CURSOR, key[0], key[1], cursor)


async def tick_by_id(conn: Conn, tick_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM clock_ticks WHERE tick_id = $1", tick_id)


async def last_ticks(conn: Conn) -> dict[str, datetime]:
    """Per job: the scheduled time of its latest tick (any source)."""
    rows = await conn.fetch("SELECT job, max(scheduled_for) AS last FROM clock_ticks GROUP BY job")
    return {r["job"]: r["last"] for r in rows}


async def ticks_of(conn: Conn, job: str | None = None) -> list[asyncpg.Record]:
    """Recorded ticks in scheduled order (for status and tests)."""
    if job is None:
        return await conn.fetch("SELECT * FROM clock_ticks ORDER BY scheduled_for, recorded_at")
    return await conn.fetch(
        "SELECT * FROM clock_ticks WHERE job = $1 ORDER BY scheduled_for, recorded_at", job)


# --- run outcomes and pauses -----------------------------------------------------------------

_OUTCOME = """
INSERT INTO clock_run_outcomes (run_id, job, status) VALUES ($1, $2, $3)
ON CONFLICT (run_id) DO UPDATE SET status = EXCLUDED.status
WHERE clock_run_outcomes.status <> 'failed' AND EXCLUDED.status = 'failed'
RETURNING seq
"""

_STREAK = """
SELECT count(*) FROM clock_run_outcomes
WHERE job = $1 AND status = 'failed' AND seq > GREATEST(
    coalesce((SELECT max(seq) FROM clock_run_outcomes WHERE job = $1 AND status = 'completed'), 0),
    coalesce((SELECT streak_floor FROM clock_jobs WHERE job = $1), 0))
"""

#: Outcomes kept per job: enough to fold late parts of recent runs.
KEEP_OUTCOMES = 500

_PRUNE = """
DELETE FROM clock_run_outcomes
WHERE job = $1 AND seq < (SELECT max(seq) - $2 FROM clock_run_outcomes WHERE job = $1)
"""


async def record_outcome(conn: Conn, run_id: UUID, job: str, status: str) -> bool:
    """Note how a run ended; True if this changed what the clock knew (first end, or now failed)."""
    changed = await conn.fetchval(_OUTCOME, run_id, job, status) is not None
    if changed:
        await conn.execute(_PRUNE, job, KEEP_OUTCOMES)
    return changed


async def failure_streak(conn: Conn, job: str) -> int:
    """Runs of ``job`` that failed in a row, most recent first (forgiven ones excluded)."""
    return int(await conn.fetchval(_STREAK, job))


async def pause_states(conn: Conn) -> dict[str, tuple[bool, str | None]]:
    rows = await conn.fetch("SELECT job, paused, reason FROM clock_jobs")
    return {r["job"]: (r["paused"], r["reason"]) for r in rows}


async def paused_jobs(conn: Conn) -> set[str]:
    rows = await conn.fetch("SELECT job FROM clock_jobs WHERE paused")
    return {r["job"] for r in rows}


async def pause(conn: Conn, job: str, reason: str) -> bool:
    """Pause ``job``'s schedule; False if it already was."""
    row = await conn.fetchrow(
        """
        INSERT INTO clock_jobs (job, paused, reason, paused_at) VALUES ($1, true, $2, now())
        ON CONFLICT (job) DO UPDATE SET paused = true, reason = $2, paused_at = now(),
                                        updated_at = now()
        WHERE NOT clock_jobs.paused
        RETURNING job
        """, job, reason)
    return row is not None


async def resume(conn: Conn, job: str) -> bool:
    """Un-pause ``job`` and forgive its failure streak; False if it was not paused."""
    row = await conn.fetchrow(
        """
        UPDATE clock_jobs SET paused = false, reason = NULL, paused_at = NULL, updated_at = now(),
            streak_floor = coalesce((SELECT max(seq) FROM clock_run_outcomes WHERE job = $1), 0)
        WHERE job = $1 AND paused
        RETURNING job
        """, job)
    return row is not None


async def pause_reason(conn: Conn, job: str) -> str | None:
    """Why ``job`` is paused (None: it is not)."""
    return await conn.fetchval("SELECT reason FROM clock_jobs WHERE job = $1 AND paused", job)


# --- retries ---------------------------------------------------------------------------------

_ADD_RETRY = """
INSERT INTO clock_retries (retry_of, attempt, tick_id, failed_run, job, tenant_id, campaign_id,
                           scheduled_for, max_leads, due_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT DO NOTHING
RETURNING retry_of
"""


async def add_retry(conn: Conn, row: RetryRow) -> bool:
    """Owe a retry; False if it was already owed (the same failure seen again)."""
    return await conn.fetchval(
        _ADD_RETRY, row.retry_of, row.attempt, row.tick_id, row.failed_run, row.job,
        row.tenant_id, row.campaign_id, row.scheduled_for, row.max_leads, row.due_at) is not None


async def due_retries(conn: Conn, now: datetime) -> list[RetryRow]:
    rows = await conn.fetch(
        "SELECT * FROM clock_retries WHERE status = 'pending' AND due_at <= $1 "
        "ORDER BY due_at, retry_of, attempt", now)
    return [RetryRow.from_row(r) for r in rows]


async def next_retry_due(conn: Conn) -> datetime | None:
    return await conn.fetchval("SELECT min(due_at) FROM clock_retries WHERE status = 'pending'")


async def settle_retry(conn: Conn, row: RetryRow, status: str, note: str | None = None) -> None:
    """Mark a pending retry emitted or cancelled."""
    await conn.execute(
        "UPDATE clock_retries SET status = $3, note = $4, updated_at = now() "
        "WHERE retry_of = $1 AND attempt = $2 AND status = 'pending'",
        row.retry_of, row.attempt, status, note)


async def cancel_retries(conn: Conn, job: str, note: str) -> int:
    """Cancel every pending retry of ``job``; returns how many."""
    result = await conn.execute(
        "UPDATE clock_retries SET status = 'cancelled', note = $2, updated_at = now() "
        "WHERE job = $1 AND status = 'pending'", job, note)
    return int(result.split()[-1])


async def retries_of(conn: Conn, job: str) -> list[RetryRow]:
    rows = await conn.fetch("SELECT * FROM clock_retries WHERE job = $1 ORDER BY retry_of, attempt",
                            job)
    return [RetryRow.from_row(r) for r in rows]


# --- log positions ---------------------------------------------------------------------------


async def load_offsets(conn: Conn, topics: Sequence[str]) -> dict[tuple[str, int], int]:
    rows = await conn.fetch(
        "SELECT topic, partition, next_offset FROM clock_offsets WHERE topic = ANY($1::text[])",
        list(topics))
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


async def save_offsets(conn: Conn, offsets: Mapping[tuple[str, int], int]) -> None:
    if offsets:
        await conn.executemany(
            """
            INSERT INTO clock_offsets (topic, partition, next_offset) VALUES ($1, $2, $3)
            ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset
            """, [(t, p, o) for (t, p), o in offsets.items()])
