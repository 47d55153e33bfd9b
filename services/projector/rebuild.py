"""Rebuild without downtime: replay the whole log into a shadow schema, then swap it in.

The live schema keeps serving meanwhile; a crash during the rebuild leaves it untouched (the
shadow is dropped at the next attempt). The swap renames schemas in one transaction; the live
projector notices the new offsets on its next batch and continues from there.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass

from events import LEAD_TOPICS, Topic

from ..runtime.bus import describe_topics
from ..runtime.db import READ_SCHEMA, apply_read_models, connect, index_read_models, quote_ident
from ..runtime.errors import InfrastructureError
from ..runtime.process import tune_gc
from ..runtime.settings import Settings
from .service import Projector, Share

log = logging.getLogger(__name__)

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
    "lead_counts": "tenant_id, campaign_id, status",
    "dead_letters": "event_id",
}


@dataclass(frozen=True)
class RebuildReport:
    events: int
    seconds: float
    swapped: bool
    workers: int = 1

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
            # The status rows describe the live projector's workers, not the rebuild's.
            shadow_status = f"{quote_ident(shadow)}.projector_status"
            await conn.execute(f"DELETE FROM {shadow_status}")  # noqa: S608 - quoted names
            await conn.execute(f"INSERT INTO {shadow_status} "  # noqa: S608 - quoted names
                               f"SELECT * FROM {live}.projector_status")
            await conn.execute(f"DROP SCHEMA IF EXISTS {old} CASCADE")
            await conn.execute(f"ALTER SCHEMA {live} RENAME TO {old}")
            await conn.execute(f"ALTER SCHEMA {quote_ident(shadow)} RENAME TO {live}")
        await conn.execute(f"DROP SCHEMA {old} CASCADE")


def default_workers() -> int:
    """One rebuild worker per core, at most four (Postgres needs cores too)."""
    return max(1, min(4, os.cpu_count() or 1))


async def plan_shares(settings: Settings, workers: int) -> list[Share | None]:
    """Split the log between ``workers`` processes (a rebuild's, or the live projector's) when
    the lead topics allow it; ``[None]``: one process folds it all."""
    if workers <= 1:
        return [None]
    topics = settings.pipeline.topics
    groups = [[topics.name(t, tenant) for t in LEAD_TOPICS]  # the shared topics, each tenant's
              for tenant in (None, *sorted(topics.tenants))]
    names = [*(name for group in groups for name in group), *topics.names(Topic.LEADS_DLQ)]
    counts = await describe_topics(settings.kafka_bootstrap_servers, names)
    group_counts = [{counts[name] for name in group} for group in groups]
    if any(len(found) != 1 for found in group_counts):
        # A lead's events sit in the same partition number of every lead topic of its tenant
        # only when their counts agree; otherwise one worker must see them all.
        log.warning("lead topics have different partition counts %s; folding with one worker",
                    counts, extra={"action": "projector_single_worker"})
        return [None]
    count = min(workers, *(min(found) for found in group_counts))
    if count < 2:  # a single partition, or no topics yet (the projector alone says so)
        return [None]
    return [Share(k, count, frozenset(names)) for k in range(count)]


async def fold_share(settings: Settings, shadow: str, batch_size: int, share: Share | None,
                     progress: Callable[[int, int | None], None] | None) -> int:
    """One worker: fold its share of the log into ``shadow`` until it is caught up."""
    projector = Projector(settings, schema=shadow, batch_size=batch_size,
                          publish_dead_letters=False, share=share)
    await projector.start(wait_for_lock=False)
    try:
        return await projector.catch_up(idle_polls=2, progress=progress)
    finally:
        await projector.stop()


def _worker_main(settings: Settings, shadow: str, batch_size: int, share: Share,
                 updates: multiprocessing.Queue[object]) -> None:
    """Entry point of a rebuild worker process."""
    tune_gc()
    asyncio.run(fold_share(settings, shadow, batch_size, share,
                           lambda n, lag: updates.put((share.index, n, lag))))


async def _fold_in_processes(settings: Settings, shadow: str, batch_size: int,
                             shares: list[Share],
                             progress: Callable[[int, int | None], None] | None) -> int:
    context = multiprocessing.get_context("spawn")
    updates = context.Queue()
    workers = [context.Process(target=_worker_main, name=f"rebuild-{s.index}",
                               args=(settings, shadow, batch_size, s, updates)) for s in shares]
    for worker in workers:
        worker.start()
    lags: dict[int, int | None] = {s.index: None for s in shares}
    events = 0
    try:
        while any(w.is_alive() for w in workers) or not updates.empty():
            try:
                index, n, lag = await asyncio.to_thread(updates.get, True, 0.5)
            except queue.Empty:
                continue
            events += n
            lags[index] = lag
            if progress is not None:
                known = [v for v in lags.values() if v is not None]
                progress(n, sum(known) if len(known) == len(lags) else None)
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.kill()
    failed = [w.name for w in workers if w.exitcode != 0]
    if failed:
        raise InfrastructureError(f"rebuild workers {failed} failed; the live read models are "
                                  "untouched - see their output above and run the rebuild again")
    return events


async def rebuild(settings: Settings, *, swap: bool = True, batch_size: int = 20_000,
                  progress: Callable[[int, int | None], None] | None = None,
                  shadow: str = SHADOW_SCHEMA, workers: int | None = None) -> RebuildReport:
    """Fold the log from offset 0 into ``shadow`` until caught up; swap it in if ``swap``.

    Several worker processes split the lead partitions between them (see Share).
    """
    tune_gc()
    await prepare_shadow(settings.database_url, shadow)
    shares = await plan_shares(settings, default_workers() if workers is None else workers)
    started = time.monotonic()
    if shares == [None]:
        events = await fold_share(settings, shadow, batch_size, None, progress)
    else:
        events = await _fold_in_processes(settings, shadow, batch_size,
                                          [s for s in shares if s is not None], progress)
    await index_read_models(settings.database_url, shadow)
    seconds = time.monotonic() - started
    if swap:
        await swap_in(settings.database_url, shadow)
    return RebuildReport(events=events, seconds=seconds, swapped=swap, workers=len(shares))


async def table_rows(dsn: str, schema: str, table: str) -> list[tuple[object, ...]]:
    """Every row of ``schema.table`` in key order, for comparing rebuilds with live models."""
    order = MODEL_TABLES[table]
    async with connect(dsn) as conn:
        rows = await conn.fetch(
            f"SELECT * FROM {quote_ident(schema)}.{quote_ident(table)} ORDER BY {order}")  # noqa: S608
    return [tuple(r.values()) for r in rows]
