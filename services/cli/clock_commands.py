"""`leadflow backfill`, `leadflow clock status|pause|resume` and `leadflow bench clock`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import asyncpg
import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from events import ALL_TENANTS, JobName, utcnow

from ..clock import store
from ..clock.backfill import BackfillEntry, Reprocess, backfill_instants, parse_time, plan_backfill
from ..clock.schedule import describe, job_schedule
from ..clock.status import load_jobs_state, scheduler_status
from ..pipeline.settings import Settings
from ..projector.queries import run_models
from ..runtime.db import connect
from ..runtime.errors import InfrastructureError
from .bench_commands import bench_app, with_servers
from .common import ConfigOption, console, run_async, settings_for, who

clock_app = typer.Typer(no_args_is_help=True, help="The clock: scheduler status, pause, resume.")

JobArg = Annotated[JobName, typer.Argument(help="The job.")]


# --- backfill --------------------------------------------------------------------------------


def _entries_table(entries: list[BackfillEntry], timezone: str) -> Table:
    table = Table(title="backfill ticks", show_lines=False)
    for column in ("scheduled for (UTC)", f"local ({timezone})", "earlier run", "action"):
        table.add_column(column)
    for e in entries:
        local = e.scheduled_for.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S %Z")
        action = "[green]tick[/]" if e.tick else "[dim]leave (has a run)[/]"
        table.add_row(e.scheduled_for.isoformat(), local, e.existing, action)
    return table


async def _existing_runs(settings: Settings, job: JobName,
                         instants: list[datetime]) -> dict[datetime, str]:
    async with connect(settings.database_url) as conn:
        try:
            return await run_models.run_statuses(conn, job.value, instants)
        except asyncpg.UndefinedTableError as exc:
            raise InfrastructureError("the read models are missing; run `leadflow db migrate` "
                                      "and start the projector") from exc


async def run_backfill(settings: Settings, job: JobName, start_text: str, end_text: str, *,
                       reprocess: Reprocess, dry_run: bool, force: bool, max_leads: int | None,
                       requested_by: str, console: Console) -> list[BackfillEntry]:
    """Plan the interval's ticks, print them, and (unless ``dry_run``) publish them in order."""
    config = settings.pipeline
    schedule = job_schedule(job, config.job(job), config.clock)
    now = utcnow()
    start = parse_time(start_text, schedule.timezone, now)
    end = parse_time(end_text, schedule.timezone, now)
    instants = backfill_instants(schedule, start, end, now=now,
                                 limit=config.clock.max_backfill_ticks, force=force)
    existing = await _existing_runs(settings, job, instants)
    entries = plan_backfill(schedule, instants, existing, reprocess=reprocess,
                            request=uuid.uuid4(), recorded_at=now, requested_by=requested_by,
                            max_leads=max_leads)
    ticks = [e.tick for e in entries if e.tick is not None]
    console.print(f"{job.value}: {describe(schedule)}; {len(instants)} scheduled time(s) in "
                  f"[{start.isoformat()}, {end.isoformat()}), {len(ticks)} to tick "
                  f"(--reprocess {reprocess.value})")
    if entries:
        console.print(_entries_table(entries, schedule.timezone))
    if dry_run or not ticks:
        console.print("dry run: nothing emitted; run again without --dry-run to emit these ticks"
                      if dry_run else "nothing to emit")
        return entries
    from ..runtime.bus import Publisher, make_broker  # the broker client is slow to import

    broker = make_broker(settings.kafka_bootstrap_servers, client_id="leadflow-backfill")
    await broker.start()
    try:
        publisher = Publisher(broker, settings.pipeline.topics)
        with Progress(TextColumn("[bold]emitting[/]"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("backfill", total=len(ticks))
            async with connect(settings.database_url) as conn:
                for tick in ticks:  # one at a time: the log keeps them in scheduled order
                    await publisher.publish_one(tick)
                    await store.record_ticks(conn, [tick])
                    progress.advance(task)
    finally:
        await broker.stop()
    console.print(f"emitted {len(ticks)} backfill tick(s) for {job.value}; follow the runs with "
                  "`leadflow clock status` or the dashboard")
    return entries


def backfill(
    job: JobArg,
    start: Annotated[str, typer.Option("--from", help="Start (inclusive), ISO 8601; a time without "
                                       "offset is in the job's timezone.")],
    end: Annotated[str, typer.Option("--to", help="End (exclusive), ISO 8601 or 'now'.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the ticks, emit nothing.")] = False,
    reprocess: Annotated[Reprocess, typer.Option(
        help="Tick instants that already had a run: none (only those without), failed, all.")
    ] = Reprocess.NONE,
    force: Annotated[bool, typer.Option(
        "--force", help="Allow an interval in the future or above clock.max_backfill_ticks.")
    ] = False,
    max_leads: Annotated[int | None, typer.Option("--max-leads", min=1,
                                                  help="Cap for each run.")] = None,
    config: ConfigOption = None,
) -> None:
    """Emit, in order, the ticks the job's schedule would have fired between --from and --to."""
    settings = settings_for(config)
    run_async(lambda: run_backfill(settings, job, start, end, reprocess=reprocess,
                                   dry_run=dry_run, force=force, max_leads=max_leads,
                                   requested_by=who(), console=console))


# --- clock status / pause / resume -------------------------------------------------------------


async def show_status(settings: Settings, console: Console,
                      tenant: str | None = None) -> dict[str, Any]:
    async with connect(settings.database_url) as conn:
        state = await load_jobs_state(conn, tenant or ALL_TENANTS)
    status = scheduler_status(settings.pipeline, now=utcnow(), jobs_state=state)
    scope = f" (tenant {tenant}: its runs and its share of the others)" if tenant else ""
    table = Table(title=f"scheduler: {status['overall_health']}{scope}", box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True)
    for column in ("job", "on", "schedule", "next (UTC)", "in h", "last tick", "health", "fails",
                   "paused"):
        table.add_column(column, no_wrap=True)
    for job, j in status["jobs"].items():
        zone = "" if j["timezone"] == "UTC" else f" {j['timezone']}"
        table.add_row(job, "yes" if j["enabled"] else "[yellow]no[/]", j["schedule"] + zone,
                      _short(j["next_run"]),
                      "-" if j["hours_until_next_run"] is None else f"{j['hours_until_next_run']:.1f}",
                      _short(j["last_tick"]), j["health"], str(j["consecutive_failures"]),
                      f"[red]{j['paused_reason'] or 'yes'}[/]" if j["paused"] else "no")
    console.print(table)
    return status


def _short(iso: str | None) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%m-%d %H:%M") if iso else "-"


@clock_app.command("status")
def status_command(config: ConfigOption = None, tenant: Annotated[str | None, typer.Option(
        "--tenant", help="Health of one tenant's runs (those scoped to it and its share of "
                         "the runs over all tenants).")] = None) -> None:
    """Per job: schedule, next run, last tick, health, and whether it is paused."""
    settings = settings_for(config)
    run_async(lambda: show_status(settings, console, tenant))


async def set_paused(settings: Settings, job: JobName, paused: bool, by: str) -> bool:
    async with connect(settings.database_url) as conn:
        if paused:
            return await store.pause(conn, job.value, f"paused by {by}")
        return await store.resume(conn, job.value)


@clock_app.command("pause")
def pause_command(job: JobArg, config: ConfigOption = None) -> None:
    """Stop the job's scheduled, catch-up and retry ticks (manual ticks still run)."""
    settings = settings_for(config)
    changed = run_async(lambda: set_paused(settings, job, True, who()))
    console.print(f"{job.value} paused; `leadflow clock resume {job.value}` resumes it"
                  if changed else f"{job.value} was already paused")


@clock_app.command("resume")
def resume_command(job: JobArg, config: ConfigOption = None) -> None:
    """Resume a paused job's schedule from its next scheduled time (missed ticks are not caught
    up) and forgive its failure streak."""
    settings = settings_for(config)
    changed = run_async(lambda: set_paused(settings, job, False, who()))
    console.print(f"{job.value} resumed" if changed else f"{job.value} was not paused")


# --- bench ---------------------------------------------------------------------------------------


def bench_clock_command(
    ticks: Annotated[int, typer.Option(help="Ticks to measure (one per second).")] = 20,
    config: ConfigOption = None,
) -> None:
    """Tick latency: scheduled time -> arrival on the broker, beside a plain aiokafka produce."""
    from ..bench.clock import bench_clock

    run_async(lambda: with_servers(config, lambda s, _: bench_clock(s, console, ticks=ticks),
                                     console))


def register(app: typer.Typer) -> None:
    """Add these commands to the `leadflow` app (`bench clock` joins the bench group)."""
    app.command("backfill")(backfill)
    app.add_typer(clock_app, name="clock")
    bench_app.command("clock")(bench_clock_command)

