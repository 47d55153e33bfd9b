"""Owner of stage_instances: which instances of each stage are up, and one id per live process.

An instance holds a Postgres advisory lock on its (prefix, job, instance id) for as long as it
runs. A second process started with the same LEADFLOW_INSTANCE_ID cannot take it and stops at
once: two instances sharing an id would share one tick group and each miss half the ticks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from events import LeadflowError

from .db import open_connection
from .locks import advisory_key, try_lock


class DuplicateInstance(LeadflowError):
    """Another live process of the same stage runs with the same instance id."""


def lock_key(prefix: str, job: str, instance_id: str) -> int:
    """Advisory lock id of one stage instance."""
    return advisory_key("instance", prefix, job, instance_id)


async def hold_identity(dsn: str, prefix: str, job: str, instance_id: str) -> asyncpg.Connection:
    """Take the instance's lock on a connection kept for the process's life (closing it, or the
    process dying, releases it). Raise DuplicateInstance if a live process holds it."""
    conn = await open_connection(dsn)
    try:
        held = await try_lock(conn, lock_key(prefix, job, instance_id))
    except BaseException:
        await conn.close()
        raise
    if not held:
        await conn.close()
        raise DuplicateInstance(
            f"another {job} instance with id {instance_id!r} is already running; give each "
            f"instance its own id (set LEADFLOW_INSTANCE_ID, e.g. {job}-2) and start it again")
    return conn


async def announce(db: asyncpg.Pool, job: str, instance_id: str, pid: int) -> None:
    await db.execute(
        """
        INSERT INTO stage_instances (job, instance_id, pid) VALUES ($1, $2, $3)
        ON CONFLICT (job, instance_id)
        DO UPDATE SET pid = EXCLUDED.pid, ready_at = now(), last_seen = now()
        """,
        job, instance_id, pid,
    )


async def heartbeat(db: asyncpg.Pool, job: str, instance_id: str,
                    partitions: Sequence[int] | None) -> None:
    """Record that the instance is alive and, for topic stages, which partitions it owns."""
    await db.execute(
        """
        UPDATE stage_instances
        SET last_seen = now(), partitions = COALESCE($3::int[], partitions)
        WHERE job = $1 AND instance_id = $2
        """,
        job, instance_id, list(partitions) if partitions is not None else None,
    )


@dataclass(frozen=True, slots=True)
class Instance:
    job: str
    instance_id: str
    pid: int
    partitions: tuple[int, ...]
    last_seen: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Instance:
        return cls(row["job"], row["instance_id"], row["pid"], tuple(row["partitions"] or ()),
                   row["last_seen"])


async def live(db: asyncpg.Pool | asyncpg.Connection,
               within: timedelta = timedelta(seconds=30)) -> list[Instance]:
    """Instances seen within ``within``, by job then id."""
    rows = await db.fetch(
        """
        SELECT job, instance_id, pid, partitions, last_seen FROM stage_instances
        WHERE last_seen >= now() - $1::interval ORDER BY job, instance_id
        """, within)
    return [Instance.from_row(r) for r in rows]
