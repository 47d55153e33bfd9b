"""`leadflow status`: per stage, live instances, backlog and a suggested instance count; and
whether the broker's log still holds what the read models were folded from."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.table import Table

from events import STAGE_INPUTS, LeadflowError

from ..pipeline.registry import TOPIC_STAGE_SPECS
from ..pipeline.settings import Settings
from .common import ConfigOption, console, run_async, settings_for


def suggest_instances(backlog: int | None, cap: int, rate_per_instance: float | None,
                      target_seconds: float, partitions: int, current: int) -> int:
    """Instances for a run to get through its work, min(backlog, cap), within
    ``target_seconds`` at the measured rate per instance; at least 1, at most the partition
    count (an instance without a partition sits idle). Unknown backlog or rate: keep ``current``."""
    if backlog is None or not rate_per_instance or rate_per_instance <= 0:
        return max(1, min(current, partitions))
    work = min(backlog, cap)
    needed = math.ceil(work / (rate_per_instance * target_seconds)) if work else 1
    return max(1, min(partitions, needed))


@dataclass(frozen=True, slots=True)
class StageStatus:
    stage: str
    instances: int
    partitions_owned: int
    partitions: int
    backlog: int | None
    backlog_at: str | None
    rate_per_instance: float | None
    suggested: int


def stage_rows(settings: Settings, live: list[Any], latest: dict[str, dict[str, Any]],
               target_seconds: float) -> list[StageStatus]:
    """One row per topic stage from the live instances and the latest runs."""
    rows = []
    for job in (stage.job for stage in TOPIC_STAGE_SPECS):
        mine = [i for i in live if i.job == job.value]
        owned = {p for i in mine for p in i.partitions}
        partitions = settings.pipeline.topics.partitions_of(STAGE_INPUTS[job][0],
                                                            settings.served_tenants)
        run = latest.get(job.value, {})
        cap = settings.pipeline.job(job).max_leads_per_run
        rate = run.get("rate_per_part")
        rows.append(StageStatus(
            job.value, len(mine), len(owned), partitions, run.get("backlog"), run.get("at"), rate,
            suggest_instances(run.get("backlog"), cap, rate, target_seconds, partitions,
                              len(mine))))
    return rows


async def show_status(settings: Settings, say: Console, target_seconds: float) -> bool:
    """Print the status; False when the broker's log holds less than the read models."""
    from ..projector import queries
    from ..replay import store as replays
    from ..replay.log_check import log_shortfalls
    from ..runtime import instances
    from ..runtime.db import READ_SCHEMA, create_pool

    pool = await create_pool(settings.database_url, max_size=2)
    read = await create_pool(settings.database_url, max_size=2, search_path=READ_SCHEMA)
    try:
        live = await instances.live(pool)
        latest = await queries.latest_backlogs(read)
        recent = await replays.recent(pool, 3)
    finally:
        await read.close()
        await pool.close()
    table = Table(title="stages")
    for column in ("stage", "instances", "partitions owned", "backlog", "as of",
                   "leads/s per instance", "suggested instances"):
        table.add_column(column, justify="left" if column in ("stage", "as of") else "right")
    for row in stage_rows(settings, live, latest, target_seconds):
        table.add_row(row.stage, str(row.instances), f"{row.partitions_owned}/{row.partitions}",
                      "-" if row.backlog is None else f"{row.backlog:,}", row.backlog_at or "-",
                      "-" if row.rate_per_instance is None else f"{row.rate_per_instance:,.0f}",
                      str(row.suggested))
    say.print(table)
    say.print(f"Backlog: leads waiting in a stage's input partitions when its last run ended "
              f"(high watermark minus the group's position). Suggested: enough instances for a "
              f"run to get through min(backlog, max_leads_per_run) in {target_seconds:g}s at the "
              f"last measured rate per instance, at most one per partition.")
    if recent:
        replays_table = Table(title="recent replays")
        for column in ("replay", "status", "changed", "unchanged", "kept", "in flight"):
            replays_table.add_column(column)
        for r in recent:
            c = r.counts
            replays_table.add_row(r.replay_id, r.status, f"{c.replayed:,}", f"{c.unchanged:,}",
                                  f"{c.kept:,}", f"{c.in_flight:,}")
        say.print(replays_table)
    try:
        short = await log_shortfalls(settings)
    except (KafkaError, LeadflowError) as exc:
        say.print(f"[yellow]log: not checked against the read models ({exc})[/yellow]")
        return True
    if not short:
        say.print("log: every partition holds what the read models were folded from")
        return True
    say.print("[red]The broker's log holds less than the read models[/red] (it lost data or was "
              "replaced):")
    for item in short:
        say.print(f"  {item.describe()}")
    say.print("Restore the broker's data if you can; otherwise see docs/operations.md "
              "(`leadflow projector adopt-log` keeps the read models and folds the new log on "
              "top, `leadflow projector rebuild` starts them again from the log as it is).")
    return False


def status(
    target: Annotated[float, typer.Option(
        "--target-seconds", min=1, help="How long a run may take when suggesting instances.")] = 60,
    config: ConfigOption = None,
) -> None:
    """Backlog per stage, live instances and a suggested instance count."""
    settings = settings_for(config)
    if not run_async(lambda: show_status(settings, console, target)):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("status")(status)
