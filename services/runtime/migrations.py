"""Versioned migrations: the numbered files in schemas/sql, applied in order, once each.

`schema_migrations` records each applied file with a checksum. `leadflow db migrate` applies
what is missing in one transaction under the schema's advisory lock (database-wide: the tables
are shared by every deployment in the database), then re-applies the read models' DDL, which
stays idempotent (`IF NOT EXISTS`, `ADD COLUMN IF NOT EXISTS`) because a rebuild creates the
same tables in a fresh schema. A database made before migrations were versioned (tables, no
`schema_migrations`) is baselined: the files up to BASELINE were all written idempotent, so
they are applied again and recorded. Services refuse to start on a schema older or newer
than the code. Deciding what to apply is pure (``plan``); the rest is a thin shell.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from .db import READ_SCHEMA, apply_read_models, connect, service_ddl_files, sql_text
from .errors import InfrastructureError
from .locks import advisory_key, lock_transaction

log = logging.getLogger(__name__)

#: The last file of the schema as it was before versioning; every file up to it is idempotent.
BASELINE = 9
#: A table every pre-versioning schema has (001_runtime.sql): its presence marks such a database.
LEGACY_MARKER = "stage_instances"
#: The schema is one per database, whatever the deployment: the lock is database-wide.
SCHEMA_LOCK = advisory_key("schema", "*")

_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")

_TABLE = """
CREATE TABLE IF NOT EXISTS public.schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    baselined   boolean NOT NULL DEFAULT false
)
"""


class SchemaError(InfrastructureError):
    """The database's schema does not match this code, or a migration cannot be applied."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:03d}_{self.name}"


def parse(filename: str, sql: str) -> Migration:
    """A migration from its file (NNN_name.sql)."""
    match = _NAME.match(filename)
    if not match:
        raise SchemaError(f"{filename}: a migration file is named NNN_name.sql")
    return Migration(int(match.group(1)), match.group(2), sql)


def check_sequence(migrations: Sequence[Migration]) -> None:
    """Versions run 1, 2, 3, ... with no gap or repeat."""
    for expected, m in enumerate(sorted(migrations, key=lambda m: m.version), start=1):
        if m.version != expected:
            raise SchemaError(f"migration {m.label}: expected version {expected:03d} (numbers "
                              "run from 001 without gaps or repeats)")


def available() -> list[Migration]:
    """The numbered files shipped with this code, in order."""
    found = sorted((parse(name, sql_text(name)) for name in service_ddl_files()),
                   key=lambda m: m.version)
    check_sequence(found)
    return found


def plan(applied: Mapping[int, str], known: Sequence[Migration]) -> list[Migration]:
    """What to apply, given the applied versions and their checksums. A database newer than the
    code, or an applied file whose text changed since, is an error."""
    by_version = {m.version: m for m in known}
    newer = sorted(v for v in applied if v not in by_version)
    if newer:
        raise SchemaError(f"the database has migration {newer[-1]:03d}, newer than this code "
                          f"(up to {max(by_version, default=0):03d}); upgrade leadflow")
    changed = [by_version[v].label for v, checksum in sorted(applied.items())
               if by_version[v].checksum != checksum]
    if changed:
        raise SchemaError(f"migration {', '.join(changed)} changed after it was applied; a "
                          "released migration must not be edited: restore it and add a new one")
    return [m for m in known if m.version not in applied]


def verdict(current: int, wanted: int) -> str | None:
    """Why a service must not start on a schema at ``current`` when the code needs ``wanted``."""
    if current < wanted:
        return (f"the database schema is at version {current:03d}, this code needs "
                f"{wanted:03d}; run `leadflow db migrate`")
    if current > wanted:
        return (f"the database schema is at version {current:03d}, newer than this code "
                f"({wanted:03d}); upgrade leadflow")
    return None


@dataclass(frozen=True, slots=True)
class Migrated:
    applied: list[Migration]
    baselined: list[Migration]


async def _applied(conn: asyncpg.Connection) -> dict[int, str]:
    if await conn.fetchval("SELECT to_regclass('public.schema_migrations')") is None:
        return {}
    rows = await conn.fetch("SELECT version, checksum FROM public.schema_migrations")
    return {r["version"]: r["checksum"] for r in rows}


async def migrate(dsn: str, known: Sequence[Migration] | None = None,
                  say: Callable[[str], None] = lambda _: None) -> Migrated:
    """Apply what is missing, in order, in one transaction under the schema lock."""
    known = list(available() if known is None else known)
    check_sequence(known)
    async with connect(dsn) as conn, conn.transaction():
        await lock_transaction(conn, SCHEMA_LOCK)
        applied = await _applied(conn)
        legacy = not applied and await conn.fetchval(
            "SELECT to_regclass($1)", f"public.{LEGACY_MARKER}") is not None
        await conn.execute(_TABLE)
        todo = plan(applied, known)
        baselined = [m for m in todo if legacy and m.version <= BASELINE]
        for m in todo:
            base = m in baselined
            say(f"{'baselining' if base else 'applying'} {m.label}")
            try:
                await conn.execute(m.sql)
            except asyncpg.PostgresError as exc:
                raise SchemaError(f"migration {m.label} failed, nothing was applied: {exc}") from exc
            await conn.execute(
                "INSERT INTO public.schema_migrations (version, name, checksum, baselined) "
                "VALUES ($1, $2, $3, $4)", m.version, m.name, m.checksum, base)
        await apply_read_models(conn, READ_SCHEMA)
    if baselined:
        log.info("schema made before versioned migrations recognised; baselined %s",
                 ", ".join(m.label for m in baselined), extra={"action": "schema_baselined"})
    if todo:
        log.info("migrations applied: %s", ", ".join(m.label for m in todo),
                 extra={"action": "schema_migrated"})
    return Migrated(applied=[m for m in todo if m not in baselined], baselined=baselined)


async def schema_version(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    """The highest migration applied (0: none, or a database never migrated)."""
    if await conn.fetchval("SELECT to_regclass('public.schema_migrations')") is None:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM public.schema_migrations"))


async def require_current(dsn: str, known: Sequence[Migration] | None = None) -> None:
    """Refuse to start (SchemaError, one line) unless the schema is exactly this code's."""
    wanted = max((m.version for m in (available() if known is None else known)), default=0)
    async with connect(dsn) as conn:
        problem = verdict(await schema_version(conn), wanted)
    if problem:
        raise SchemaError(problem)
