"""Rebuild without downtime: replay the whole log into a shadow schema, then swap it in.

The live schema keeps serving meanwhile; a crash during the rebuild leaves it untouched (the
shadow is dropped at the next attempt). The swap renames schemas in one transaction; the live
projector notices the new offsets on its next batch and continues from there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..runtime.db import READ_SCHEMA, apply_read_models, connect, index_read_models, quote_ident
from ..runtime.process import tune_gc
from ..runtime.settings import Settings
from .service import Projector

SHADOW_SCHEMA = "leadflow_read_rebuild"
OLD_SCHEMA = "leadflow_read_old"

#: Tables compared when checking that a rebuild equals the live models (projector_status and
#: projector_offsets describe the process, not the log).
MODEL_TABLES = {
    "leads": "lead_id",
    "lead_events": "event_id",
    "job_run_parts": "run_id, part",
    "job_runs": "run_id",
    "job_metrics": "job, tenant_id",
    "pipeline_daily": "day, tenant_id, campaign_id, metric",
    "dead_letters": "event_id",
}


@dataclass(frozen=True)
class RebuildReport:
    events: int
    seconds: float
    swapped: bool

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def prepare_shadow(dsn: str, shadow: str = SHADOW_SCHEMA) -> None:
    """Drop what a crashed rebuild left behind and create empty read models in ``shadow``.

    Secondary indexes come later (index_read_models): loading first and indexing once is
    much cheaper than maintaining every index row by row.
    """
    async with connect(dsn) as conn, conn.transaction():
        await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(shadow)} CASCADE")
        await apply_read_models(conn, shadow, indexes=False)


async def swap_in(dsn: str, shadow: str = SHADOW_SCHEMA) -> None:
    """Make ``shadow`` the live schema atomically, then drop the previous one."""
    live, old = quote_ident(READ_SCHEMA), quote_ident(OLD_SCHEMA)
    async with connect(dsn) as conn:
        async with conn.transaction():
            # Waits for the live projector's batch in flight and holds the next one off.
            await conn.execute(f"LOCK TABLE {live}.projector_offsets IN ACCESS EXCLUSIVE MODE")
            await conn.execute(f"DROP SCHEMA IF EXISTS {old} CASCADE")
            await conn.execute(f"ALTER SCHEMA {live} RENAME TO {old}")
            await conn.execute(f"ALTER SCHEMA {quote_ident(shadow)} RENAME TO {live}")
        await conn.execute(f"DROP SCHEMA {old} CASCADE")


async def rebuild(settings: Settings, *, swap: bool = True, batch_size: int = 20_000,
                  progress: Callable[[int, int | None], None] | None = None,
                  shadow: str = SHADOW_SCHEMA) -> RebuildReport:
    """Fold the log from offset 0 into ``shadow`` until caught up; swap it in if ``swap``."""
    tune_gc()
    await prepare_shadow(settings.database_url, shadow)
    projector = Projector(settings, schema=shadow, batch_size=batch_size,
                          publish_dead_letters=False)
    started = time.monotonic()
    await projector.start(wait_for_lock=False)
    try:
        events = await projector.catch_up(idle_polls=2, progress=progress)
    finally:
        await projector.stop()
    await index_read_models(settings.database_url, shadow)
    seconds = time.monotonic() - started
    if swap:
        await swap_in(settings.database_url, shadow)
    return RebuildReport(events=events, seconds=seconds, swapped=swap)


async def table_rows(dsn: str, schema: str, table: str) -> list[tuple[object, ...]]:
    """Every row of ``schema.table`` in key order, for comparing rebuilds with live models."""
    order = MODEL_TABLES[table]
    async with connect(dsn) as conn:
        rows = await conn.fetch(
            f"SELECT * FROM {quote_ident(schema)}.{quote_ident(table)} ORDER BY {order}")  # noqa: S608
    return [tuple(r.values()) for r in rows]
