"""Owner of contact_usage: sends counted per quota or rate-limit period, reserved atomically.

A send reserves one unit of every limit it is subject to, all or none, before it happens, so
instances running at once never overshoot a quota. A send that does not happen gives its units
back; one whose outcome is unknown keeps them (erring towards sending less).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import asyncpg

from .policy import Limit, Period, allocate


async def reserve_many(pool: asyncpg.Pool,
                       wanted: Sequence[Sequence[Limit]]) -> list[Limit | None]:
    """Take one unit of each limit of each send, in one transaction for the batch: per send,
    None (its units are taken) or the first limit that was full (nothing kept for it)."""
    need: Counter[Period] = Counter()
    cap: dict[Period, int] = {}
    for limits in wanted:
        for lim in limits:
            need[(lim.scope, lim.start)] += 1
            cap[(lim.scope, lim.start)] = lim.limit
    if not need:
        return [None] * len(wanted)
    periods = sorted(need)  # one lock order for every instance: no deadlock between them
    scopes, starts = [s for s, _ in periods], [t for _, t in periods]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """
            INSERT INTO contact_usage (scope, period_start, used)
            SELECT scope, start, 0 FROM unnest($1::text[], $2::timestamptz[]) AS w(scope, start)
            ON CONFLICT (scope, period_start) DO NOTHING
            """, scopes, starts)
        # FOR UPDATE reads each counter's latest value and holds it until the commit, so the
        # grant (new - old) is exact however many instances reserve at once.
        rows = await conn.fetch(
            """
            WITH w AS (
                SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int[], $4::int[])
                AS w(scope, start, n, cap)),
            old AS (
                SELECT u.scope, u.period_start, u.used, w.n, w.cap
                FROM contact_usage u JOIN w ON u.scope = w.scope AND u.period_start = w.start
                ORDER BY u.scope, u.period_start
                FOR UPDATE OF u)
            UPDATE contact_usage u
            SET used = GREATEST(old.used, LEAST(old.used + old.n, old.cap))
            FROM old
            WHERE u.scope = old.scope AND u.period_start = old.period_start
            RETURNING u.scope, u.period_start, u.used - old.used AS granted
            """, scopes, starts, [need[p] for p in periods], [cap[p] for p in periods])
        granted = {(r["scope"], r["period_start"]): r["granted"] for r in rows}
        verdicts, left = allocate(wanted, granted)
        await _give_back(conn, left)
    return verdicts


async def give_back_many(pool: asyncpg.Pool, limits: Sequence[Sequence[Limit]]) -> None:
    """``give_back`` for several sends at once."""
    units: Counter[Period] = Counter((lim.scope, lim.start) for ls in limits for lim in ls)
    if units:
        await _give_back(pool, units)


async def _give_back(db: asyncpg.Pool | asyncpg.Connection, units: Mapping[Period, int]) -> None:
    if not units:
        return
    periods = sorted(units)
    await db.execute(
        """
        UPDATE contact_usage u SET used = GREATEST(u.used - w.n, 0)
        FROM unnest($1::text[], $2::timestamptz[], $3::int[]) AS w(scope, start, n)
        WHERE u.scope = w.scope AND u.period_start = w.start
        """, [s for s, _ in periods], [t for _, t in periods], [units[p] for p in periods])


async def give_back(pool: asyncpg.Pool, limits: Sequence[Limit]) -> None:
    """Return the units a send reserved but did not use."""
    await give_back_many(pool, [limits])


async def used(pool: asyncpg.Pool, scope: str) -> dict[str, int]:
    """Units used per period of one scope (ISO start -> count), for the dashboard and tests."""
    rows = await pool.fetch(
        "SELECT period_start, used FROM contact_usage WHERE scope = $1 ORDER BY period_start", scope)
    return {r["period_start"].isoformat(): r["used"] for r in rows}

