"""The whole product over an import: score, qualify, route, contact (proof mode), the projector
and the clock, each its own process, the clock ticking every stage every second (the generated
config) as a deployment that wants near-streaming latency would run it.

Timed from the first lead published to the moment the projector's leads table shows every lead
at a final status (CONTACTED or REJECTED). Latency is per lead, from its LeadCreated to its
LeadContacted, both as recorded in the lead_events read model.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console

from events import LeadContacted, LeadCreated, LeadStatus
from events.state_machine import event_type

from ..pipeline.settings import Settings
from ..pipeline.stack import Stack
from ..projector import queries
from ..projector.fold import FIRST_CONTACT, entered
from ..runtime.bus import ensure_topics
from ..runtime.db import READ_SCHEMA, create_pool
from ..runtime.errors import InfrastructureError
from . import procstat
from .backlog import followed, summarize
from .leads import progress_bar, publish_leads
from .workspace import STAGE_JOBS, scratch_database, stack_for, wait_owned

SERVICES = (*(job.value for job in STAGE_JOBS), "projector", "clock")
FINAL = (LeadStatus.CONTACTED.value, LeadStatus.REJECTED.value)
#: Give up when no lead reached a final status for this long (a stuck service, not a slow one).
STALL_SECONDS = 180

_LATENCY = """
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY seconds) AS p99
FROM (SELECT extract(epoch FROM done.recorded_at - created.recorded_at) AS seconds
      FROM lead_events created JOIN lead_events done USING (lead_id)
      WHERE created.type = $1 AND done.type = $2) AS per_lead
"""


# Progress while the run goes: leads that reached a final status, from the projector's daily
# counters (a few rows). Counting the leads table instead scans every lead on each poll, a
# cost that grows with the run and competes with the product for the same cores.
_FINAL_SO_FAR = "SELECT coalesce(sum(count), 0)::bigint FROM pipeline_daily WHERE metric = ANY($1)"
_FINAL_METRICS = [FIRST_CONTACT, entered(LeadStatus.REJECTED)]


@dataclass(frozen=True, slots=True)
class ProductRun:
    """One import through the whole product, and each service process's figures."""

    leads: int
    seconds: float
    statuses: dict[str, int]
    p50_seconds: float
    p99_seconds: float
    projector_lag: int
    services: dict[str, procstat.ProcStat]  # at the end of the run
    cpu_seconds: dict[str, float]  # spent during the run
    #: The same for the servers the command started itself (postgres, broker), children included.
    server_cpu_seconds: dict[str, float] = field(default_factory=dict)
    #: Where the backlog sat while the run went (backlog.summarize).
    backlog: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.leads / self.seconds if self.seconds else 0.0

    @property
    def final(self) -> int:
        return sum(self.statuses.get(status, 0) for status in FINAL)


async def product_run(settings: Settings, n: int, workdir: Path, say: Console,
                      servers: Mapping[str, int] | None = None) -> ProductRun:
    """Start every service, import ``n`` leads, wait until each lead is at its final status.
    ``servers``: name -> pid of local servers whose CPU time the run should also report."""
    servers = servers or {}
    async with (scratch_database(settings, f"pipeline{n}") as scratch,
                running_product(scratch, workdir, say, f"pipeline ({n:,} leads)") as (stack, pool)):
        before = {name: procstat.read_tree(p.pid) for name, p in stack.procs.items()}
        servers_before = {name: procstat.server_cpu_seconds(pid) for name, pid in servers.items()}
        started = time.monotonic()
        async with followed(scratch, pool) as samples:
            statuses = await import_and_wait(scratch, pool, stack, n, say)
        seconds = time.monotonic() - started
        after = {name: procstat.read_tree(p.pid) for name, p in stack.procs.items()}
        servers_cpu = {name: procstat.server_cpu_seconds(pid) - servers_before[name]
                       for name, pid in servers.items()}
        lag = await pool.fetchval("SELECT lag FROM projector_progress") or 0
        with say.status(f"pipeline ({n:,} leads): latency per lead"):
            latency = await pool.fetchrow(_LATENCY, event_type(LeadCreated),
                                          event_type(LeadContacted))
    result = ProductRun(n, seconds, statuses, latency["p50"] or 0.0, latency["p99"] or 0.0, lag,
                        after, {k: after[k].cpu_seconds - before[k].cpu_seconds for k in after},
                        servers_cpu, summarize(samples))
    say.print(f"pipeline: {n:,} leads to a final status in {seconds:.2f}s ({result.rate:,.0f} "
              f"leads/s), latency p50 {result.p50_seconds:.2f}s p99 {result.p99_seconds:.2f}s")
    return result


@asynccontextmanager
async def running_product(scratch: Settings, workdir: Path, say: Console, label: str
                          ) -> AsyncIterator[tuple[Stack, asyncpg.Pool]]:
    """Every service of ``scratch`` (its topics created) started, owning its partitions and
    warmed up, with a pool on the read models; all stopped on exit."""
    await ensure_topics(scratch.kafka_bootstrap_servers, scratch.pipeline.topics)
    stack = stack_for(scratch, workdir, SERVICES)
    pool = await create_pool(scratch.database_url, search_path=READ_SCHEMA)
    try:
        with say.status(f"{label}: starting {len(SERVICES)} services"):
            await stack.start_services(timeout=120)
            await wait_owned(scratch, STAGE_JOBS, [p.pid for p in stack.procs.values()],
                             check=stack.check_alive)
            await warm(pool, stack)
        yield stack, pool
    finally:
        await pool.close()
        stack.stop()


async def warm(pool: asyncpg.Pool, stack: Stack, timeout: float = 120) -> None:
    """Until every stage has a completed run in the read models: the clock ticks, the stages
    answer and the projector folds their job events, before the first lead is imported."""
    jobs = [job.value for job in STAGE_JOBS]
    give_up = time.monotonic() + timeout
    while await pool.fetchval("SELECT count(DISTINCT job) FROM job_runs "
                              "WHERE job = ANY($1::text[]) AND status = 'completed'",
                              jobs) < len(jobs):
        stack.check_alive()
        if time.monotonic() > give_up:
            raise InfrastructureError(f"the stages had no completed run within {timeout:.0f}s "
                                      f"of starting; see {stack.log_dir}")
        await asyncio.sleep(0.25)


async def status_counts(pool: asyncpg.Pool) -> dict[str, int]:
    """Leads per status in the read model (the statuses some lead is at)."""
    return {status: n for status, n in (await queries.status_counts(pool)).items() if n}


async def import_and_wait(settings: Settings, pool: asyncpg.Pool, stack: Stack, n: int,
                          say: Console, batches: Iterable[list[LeadCreated]] | None = None,
                          ) -> dict[str, int]:
    """Publish the leads (``n`` of them, or ``batches`` of ``n`` in all) while following the
    read models; the status counts at the end."""
    with progress_bar(say) as progress:
        imported = progress.add_task("imported", total=n)
        finished = progress.add_task("at a final status", total=n)
        importer = asyncio.create_task(publish_leads(
            settings.kafka_bootstrap_servers, settings.pipeline.topics, n,
            lambda k: progress.advance(imported, k), batches))
        try:
            final, moved_at = 0, time.monotonic()
            while True:
                stack.check_alive()
                if importer.done():
                    importer.result()  # an import that failed fails the run
                now_final = await pool.fetchval(_FINAL_SO_FAR, _FINAL_METRICS)
                progress.update(finished, completed=now_final)
                if now_final >= n and importer.done():
                    statuses = await status_counts(pool)
                    if sum(statuses.get(status, 0) for status in FINAL) >= n:
                        return statuses
                if now_final != final:
                    final, moved_at = now_final, time.monotonic()
                elif time.monotonic() - moved_at > STALL_SECONDS:
                    raise InfrastructureError(
                        f"no lead reached a final status for {STALL_SECONDS}s ({final:,} of "
                        f"{n:,} did; {await status_counts(pool)}); see the logs in "
                        f"{stack.log_dir}")
                await asyncio.sleep(0.5)
        finally:
            importer.cancel()
            await asyncio.gather(importer, return_exceptions=True)
