"""Postgres advisory-lock ids, from one place. Deployments may share a database (each with
its own topic prefix), so every key carries the deployment's prefix: two deployments never
block each other's clock, harvest, replay, projector, notifier or instances. The one
database-wide lock is the schema's (migrations.py): the tables are shared."""

from __future__ import annotations

import contextlib
import zlib

import asyncpg

from .db import DRIVER_ERRORS, open_connection


def advisory_key(name: str, prefix: str, *parts: str) -> int:
    """The lock id of ``name`` (e.g. "clock") for one deployment, narrowed by ``parts``."""
    return zlib.crc32(":".join((f"leadflow-{name}", prefix, *parts)).encode())


async def try_lock(conn: asyncpg.Connection, key: int, *, shared: bool = False) -> bool:
    """Take the session lock ``key`` on ``conn`` if nobody holds it (``shared``: if nobody
    holds it exclusively); never waits. It is held until the connection closes (the process
    dying included)."""
    if shared:
        return bool(await conn.fetchval("SELECT pg_try_advisory_lock_shared($1)", key))
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key))


async def unlock_all(conn: asyncpg.Connection) -> None:
    """Let go of every session lock ``conn`` holds."""
    await conn.execute("SELECT pg_advisory_unlock_all()")


async def lock_transaction(conn: asyncpg.Connection, key: int) -> None:
    """Wait for the lock ``key`` and hold it until ``conn``'s transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", key)


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
        self.held = await try_lock(self._conn, self.key)
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
