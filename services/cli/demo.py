"""`leadflow demo`: the whole pipeline once, on real servers, then a summary."""

from __future__ import annotations

import asyncio
import importlib.resources
import shutil
import tempfile
import time
from pathlib import Path
from uuid import UUID

import asyncpg
from rich.console import Console
from rich.table import Table

from ..clock.manual import manual_tick
from ..pipeline.registry import STAGE_NAMES, STAGES
from ..pipeline.settings import Settings, load_settings
from ..pipeline.stack import Stack
from ..projector import queries
from ..projector.follow import RunFollower
from ..runtime.bus import Publisher, make_broker
from ..runtime.db import READ_SCHEMA, create_pool
from ..runtime.errors import InfrastructureError


def demo_config() -> Path:
    """The config shipped with the demo data (services/demo/leadflow.toml)."""
    return Path(str(importlib.resources.files("services").joinpath("demo", "leadflow.toml")))


async def settle(stack: Stack, pool: asyncpg.Pool, run_ids: list[UUID],
                 timeout: float = 60.0) -> None:
    """Wait until the projector has folded every run and the lead counts stop moving."""
    give_up = time.monotonic() + timeout
    previous = None
    while time.monotonic() < give_up:
        stack.check_alive()
        done = await queries.finished_runs(pool, run_ids)
        snapshot = (await queries.status_counts(pool), await queries.lead_event_count(pool))
        if done == len(run_ids) and snapshot == previous:
            return
        previous = snapshot
        await asyncio.sleep(0.7)
    raise InfrastructureError("the projector did not catch up within 60s; run the demo with "
                              "--keep-logs and read projector.log")


async def pipeline_pass(stack: Stack, settings: Settings, console: Console,
                        requested_by: str) -> None:
    """Tick each stage once in pipeline order, each after the previous run ended; then print
    what the read models say."""
    broker = make_broker(settings.kafka_bootstrap_servers, client_id="leadflow-demo")
    follower = RunFollower(settings.kafka_bootstrap_servers, settings.prefix)
    await broker.start()
    await follower.start()
    publisher = Publisher(broker, settings.pipeline.topics)
    run_ids = []
    try:
        for job in (stage.job for stage in STAGES):
            tick = manual_tick(job, requested_by=requested_by)
            await publisher.publish_one(tick)
            with console.status(f"{job.value}: running"):
                run = await follower.wait(tick.tick_id, timeout=300)
            run_ids.append(tick.tick_id)
            console.print(f"{job.value:<8} {run.status:<9} {run.leads_processed:>4} processed "
                          f"{run.leads_failed:>3} failed  {run.duration_seconds or 0:.2f}s")
    finally:
        await follower.stop()
        await broker.stop()
    pool = await create_pool(stack.database_url or "", search_path=READ_SCHEMA)
    try:
        with console.status("waiting for the projector"):
            await settle(stack, pool, run_ids)
        await print_summary(pool, console)
    finally:
        await pool.close()


async def run_demo(config: Path | None, console: Console, *, keep_logs: bool = False,
                   broker: str = "tansu") -> None:
    config = config or demo_config()
    workdir = Path(tempfile.mkdtemp(prefix="leadflow-demo-"))
    stack = Stack(config=config, services=(*STAGE_NAMES, "projector"), workdir=workdir,
                  broker_kind=broker)
    try:
        with console.status("starting Postgres, the broker and the services..."):
            await stack.start_servers(say=console.print)
            await stack.start_services()
        await pipeline_pass(stack, load_settings(config=config), console, "leadflow demo")
    finally:
        stack.stop()
        if keep_logs:
            kept = Path(".leadflow") / "demo-logs"
            shutil.copytree(stack.log_dir, kept, dirs_exist_ok=True)
            console.print(f"service logs kept in {kept}")
        shutil.rmtree(workdir, ignore_errors=True)


async def print_summary(pool: asyncpg.Pool, console: Console) -> None:
    counts = await queries.status_counts(pool)
    table = Table("status", "leads", title="Leads by status")
    for status, n in counts.items():
        table.add_row(status, str(n))
    table.add_row("[bold]total[/]", f"[bold]{sum(counts.values())}[/]")
    console.print(table)
    runs = Table("job", "source", "status", "processed", "succeeded", "failed", "seconds",
                 title="Runs")
    for run in reversed(await queries.recent_runs(pool, limit=10)):
        runs.add_row(run["job_type"], run["source"], run["status"], str(run["leads_processed"]),
                     str(run["leads_succeeded"]), str(run["leads_failed"]),
                     f"{run['duration_seconds'] or 0:.2f}")
    console.print(runs)
    dead = await queries.dead_letter_count(pool)
    console.print(f"{dead} dead letter(s) (bad source rows or messages), kept with the reason.")
