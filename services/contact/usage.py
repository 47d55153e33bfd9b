"""Owner of contact_usage: sends counted per quota or rate-limit period, reserved atomically.

A send reserves one unit of every limit it is subject to, all or none, before it happens, so
instances running at once never overshoot a quota. A send that does not happen gives its units
back; one whose outcome is unknown keeps them (erring towards sending less).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from .policy import Limit


async def reserve(pool: asyncpg.Pool, limits: Sequence[Limit]) -> Limit | None:
    """Take one unit of each limit; return the first limit that is full (nothing taken) or None."""
    if not limits:
        return None
    try:
        await _take_all(pool, limits)
    except _Full as full:  # the transaction rolled back: nothing was taken
        return full.limit
    return None


async def _take_all(pool: asyncpg.Pool, limits: Sequence[Limit]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for limit in limits:
            if limit.limit <= 0:
                raise _Full(limit)
            taken = await conn.fetchval(
                """
                INSERT INTO contact_usage AS u (scope, period_start, used) VALUES ($1, $2, 1)
                ON CONFLICT (scope, period_start) DO UPDATE SET used = u.used + 1
                WHERE u.used < $3
                RETURNING used
                """, limit.scope, limit.start, limit.limit)
            if taken is None:
                raise _Full(limit)


async def give_back(pool: asyncpg.Pool, limits: Sequence[Limit]) -> None:
    """Return the units a send reserved but did not use."""
    if limits:
        await pool.executemany(
            """
            UPDATE contact_usage SET used = GREATEST(used - 1, 0)
            WHERE scope = $1 AND period_start = $2
            """, [(limit.scope, limit.start) for limit in limits])


async def used(pool: asyncpg.Pool, scope: str) -> dict[str, int]:
    """Units used per period of one scope (ISO start -> count), for the dashboard and tests."""
    rows = await pool.fetch(
        "SELECT period_start, used FROM contact_usage WHERE scope = $1 ORDER BY period_start", scope)
    return {r["period_start"].isoformat(): r["used"] for r in rows}


class _Full(Exception):
    def __init__(self, limit: Limit) -> None:
        super().__init__(limit.scope)
        self.limit = limit
