"""Postgres access: pools, and applying the DDL in schemas/sql."""

from __future__ import annotations

import asyncio
import importlib.resources
import json
import logging
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeAlias

import asyncpg

from .errors import InfrastructureError

#: What a query function takes: a pool (one statement, its own transaction) or a connection
#: (inside the caller's transaction).
Db: TypeAlias = asyncpg.Pool | asyncpg.Connection

log = logging.getLogger(__name__)

#: Schema that holds the live read models (a rebuild fills a shadow schema and swaps it in).
READ_SCHEMA = "leadflow_read"

#: The connection or the server went away (or is restarting): reconnect and try again.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError, InfrastructureError,
)
#: The rows themselves were refused (SQLSTATE classes 22, 23, 54, or the driver could not
#: encode a value): the same rows fail again. Checked before CONNECTION_ERRORS, since the
#: driver's own DataError is an InterfaceError.
DATA_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.DataError, asyncpg.IntegrityConstraintViolationError,
    asyncpg.exceptions.ProgramLimitExceededError, asyncpg.exceptions._base.DataError,
)


#: Whatever the driver raises when Postgres is unreachable, restarting or refuses a statement.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
)


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Re-raise driver errors as InfrastructureError("<what> unavailable: ..."), the one error
    callers retry on; rows Postgres refuses (DATA_ERRORS) pass through unchanged."""
    try:
        yield
    except DATA_ERRORS:
        raise
    except DRIVER_ERRORS as exc:
        raise InfrastructureError(f"{what} unavailable: {exc}") from exc


class Backoff:
    """Capped exponential delays with full jitter, so restarted clients do not retry in step."""

    def __init__(self, first: float = 0.2, cap: float = 10.0) -> None:
        self.first = first
        self.cap = cap
        self.attempt = 0

    def next_delay(self) -> float:
        """The delay before the next attempt (grows until ``cap``)."""
        ceiling = min(self.cap, self.first * 2 ** min(self.attempt, 16))
        self.attempt += 1
        return ceiling / 2 + random.random() * ceiling / 2

    def reset(self) -> None:
        self.attempt = 0


def sql_text(name: str) -> str:
    """Text of one DDL file in schemas/sql."""
    return importlib.resources.files("schemas").joinpath("sql", name).read_text(encoding="utf-8")


def service_ddl_files() -> list[str]:
    """The numbered DDL files for service-owned tables, in order."""
    folder = importlib.resources.files("schemas").joinpath("sql")
    return sorted(p.name for p in folder.iterdir() if p.name[:3].isdigit() and p.name.endswith(".sql"))


def _jsonb_encode(value: Any) -> bytes:
    return b"\x01" + _json_encode(value)  # jsonb's binary format: a version byte, then the text


def _jsonb_decode(data: bytes) -> Any:
    return json.loads(data[1:])


def _json_encode(value: Any) -> bytes:
    # json's binary format is its text. bytes are JSON already (a message as it came off the
    # log): stored verbatim, no decode/encode round trip.
    if isinstance(value, bytes):
        return value
    return json.dumps(value, separators=(",", ":")).encode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Binary format, so that COPY (always binary in asyncpg) can write json columns too.
    await conn.set_type_codec("jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode,
                              schema="pg_catalog", format="binary")
    await conn.set_type_codec("json", encoder=_json_encode, decoder=json.loads,
                              schema="pg_catalog", format="binary")


#: Every execution is planned with its parameters. The pipeline's tables grow from empty within
#: a run: a generic plan Postgres settles on after five executions (a scan of the whole contact
#: ledger, cheapest while it held a few hundred rows) was kept while the table grew to 100,000
#: rows, and marking a window sent took 30-80 ms. Planning a statement costs tens of µs.
PLANNING = {"plan_cache_mode": "force_custom_plan"}


async def _end_transaction_only(conn: asyncpg.Connection) -> None:
    # asyncpg has rolled back an open transaction before calling this: nothing else to undo.
    return None


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 4,
                      search_path: str | None = None, attempts: int = 30,
                      session_state: bool = True) -> asyncpg.Pool:
    """A pool with JSON codecs; retries while the server is starting, then says what to check.

    With a ``search_path`` (the read models) statements are not cached: a rebuild swaps the
    schema under the same name, and a cached plan would keep reading the old tables.
    ``session_state=False`` is for users that leave nothing in a session (advisory locks, SET,
    LISTEN, cursors): a released connection then only has its transaction ended, without
    asyncpg's reset statement, a round trip per release (contact releases several per window).
    """
    settings = dict(PLANNING)
    if search_path:
        settings["search_path"] = f"{search_path}, public"
    cache = 0 if search_path else 100
    last: Exception | None = None
    for _ in range(attempts):
        try:
            return await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, init=_init_connection,
                server_settings=settings, statement_cache_size=cache,
                reset=None if session_state else _end_transaction_only)
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError) as exc:
            last = exc
            await asyncio.sleep(0.5)
        except asyncpg.PostgresError as exc:
            raise InfrastructureError(f"Postgres refused the connection: {exc}; check DATABASE_URL") from exc
    raise InfrastructureError(
        f"cannot reach Postgres at {redact_dsn(dsn)} ({last}); start it or set DATABASE_URL"
    ) from last


def redact_dsn(dsn: str) -> str:
    """The DSN without its password, for messages."""
    if "@" not in dsn or "://" not in dsn:
        return dsn
    scheme, rest = dsn.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"


async def open_connection(dsn: str, *, statement_cache_size: int = 100) -> asyncpg.Connection:
    """One connection with the JSON codecs; the caller closes it."""
    try:
        conn = await asyncpg.connect(dsn, statement_cache_size=statement_cache_size,
                                     server_settings=dict(PLANNING))
    except (OSError, asyncpg.PostgresError) as exc:
        raise InfrastructureError(
            f"cannot reach Postgres at {redact_dsn(dsn)} ({exc}); start it or set DATABASE_URL"
        ) from exc
    await _init_connection(conn)
    return conn


@asynccontextmanager
async def connect(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """One connection with the JSON codecs, closed on exit."""
    conn = await open_connection(dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def ensure_database(admin_dsn: str, name: str) -> None:
    """Create database ``name`` through ``admin_dsn`` unless it exists."""
    async with connect(admin_dsn) as conn:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f"CREATE DATABASE {quote_ident(name)}")


async def apply_read_models(conn: asyncpg.Connection, schema: str, *, indexes: bool = True) -> None:
    """Create the read-model tables (and their secondary indexes) inside ``schema``; idempotent.

    Call inside a transaction (the search_path change is local to it).
    """
    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{_ident(schema)}"')
    await conn.execute(f'SET LOCAL search_path TO "{_ident(schema)}"')
    await conn.execute(sql_text("read_models.sql"))
    if indexes:
        await conn.execute(sql_text("read_model_indexes.sql"))


async def index_read_models(dsn: str, schema: str) -> None:
    """Create the secondary indexes of the read models in ``schema`` (after a bulk load)."""
    async with connect(dsn) as conn, conn.transaction():
        await conn.execute(f'SET LOCAL search_path TO "{_ident(schema)}"')
        await conn.execute(sql_text("read_model_indexes.sql"))


def _ident(name: str) -> str:
    # Schema names cannot be bound as parameters; accept only plain identifiers.
    if not name.replace("_", "").isalnum() or not name[0].isalpha():
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name


def quote_ident(name: str) -> str:
    """A checked, quoted identifier for the few places SQL must name a schema."""
    return f'"{_ident(name)}"'


def records(rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [dict(r) for r in rows]
