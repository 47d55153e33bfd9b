"""Helpers shared by the query modules: connection type, JSON-ready values, paging bounds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from ...runtime.db import Db as Conn

#: Queries accept a pool (one statement each) or a connection (inside a snapshot).


def iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def plain(value: Any) -> Any:
    """A database value as JSON-ready data: ids as strings, times in ISO 8601."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def plain_row(record: asyncpg.Record) -> dict[str, Any]:
    return {k: plain(v) for k, v in record.items()}


def like_pattern(text: str) -> str:
    """``%text%`` for ILIKE with the wildcards in ``text`` taken literally (ESCAPE '\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@asynccontextmanager
async def snapshot(conn: Conn) -> AsyncIterator[asyncpg.Connection]:
    """One connection in a read-only repeatable-read transaction: every query sees the same
    state, so numbers read together agree (a caller's open transaction is reused)."""
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as held, held.transaction(isolation="repeatable_read",
                                                            readonly=True):
            yield held
    elif conn.is_in_transaction():
        yield conn
    else:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            yield conn
