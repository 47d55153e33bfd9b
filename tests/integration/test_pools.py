"""What a pooled connection carries back to the pool, on the real Postgres: a service's pool
(no session state) only has its transaction ended; the default pool also drops session locks."""

from __future__ import annotations

import pytest

from services.runtime.db import create_pool

LOCK = 4242


async def test_a_stage_pool_ends_a_transaction_left_open(database: str) -> None:
    pool = await create_pool(database, min_size=1, max_size=1, session_state=False)
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TABLE t (n int)")
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO t VALUES (1)")
        async with pool.acquire() as conn:  # the only connection: the same session
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM t") == 0
    finally:
        await pool.close()


@pytest.mark.parametrize(("session_state", "held_after"), [(True, False), (False, True)])
async def test_only_the_default_pool_drops_a_session_lock_on_release(
        database: str, session_state: bool, held_after: bool) -> None:
    # Why a session lock goes on a connection of its own (runtime.locks.AdvisoryLock).
    pool = await create_pool(database, min_size=1, max_size=1, session_state=session_state)
    try:
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK)
        async with pool.acquire() as conn:
            held = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 "
                "AND pid = pg_backend_pid()", LOCK)
            assert bool(held) is held_after
    finally:
        await pool.close()
