"""One active clock: the holder of a Postgres session advisory lock emits, the others stand by.

The lock lives as long as its connection: a clock that dies (even by SIGKILL) drops the
connection, Postgres releases the lock, and a standby's next try takes it.
"""

from __future__ import annotations

import contextlib

import asyncpg

from services.runtime.db import DRIVER_ERRORS, open_connection
from services.runtime.locks import advisory_key


def lock_key(prefix: str) -> int:
    """Advisory lock id of the clock for one topic prefix (deployments may share a database)."""
    return advisory_key("clock", prefix)


class AdvisoryLock:
    """A session-level advisory lock on a connection of its own."""

    def __init__(self, dsn: str, key: int) -> None:
        self.dsn = dsn
        self.key = key
        self._conn: asyncpg.Connection | None = None
        self.held = False

    async def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; never waits."""
        if self.held:
            return True
        if self._conn is None or self._conn.is_closed():
            self._conn = await open_connection(self.dsn)
        self.held = bool(await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key))
        return self.held

    async def still_held(self) -> bool:
        """False once the lock's connection is gone (the lock went with it)."""
        if not self.held or self._conn is None or self._conn.is_closed():
            self.held = False
            return False
        try:
            await self._conn.fetchval("SELECT 1", timeout=5)
        except DRIVER_ERRORS:
            self.held = False
        return self.held

    async def release(self) -> None:
        """Close the connection, which releases the lock."""
        self.held = False
        if self._conn is not None:
            with contextlib.suppress(*DRIVER_ERRORS):
                await self._conn.close(timeout=5)
            self._conn = None
