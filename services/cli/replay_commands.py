"""`leadflow replay <stage>`: re-run a stage's input through today's logic; `replay projector`
rebuilds the read models."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from events import JobName, utcnow

from ..pipeline.registry import TOPIC_STAGE_SPECS
from ..pipeline.settings import Settings
from ..replay.engine import ReplayReport
from ..replay.rules import rules_for
from ..replay.spec import ReplaySpec, parse_time
from ..replay.store import Counts
from .common import ConfigOption, console, err, run_async, settings_for, who
from .projector_commands import rebuild_with_progress

#: The stages that drain a topic (replay says why one cannot be replayed) and the projector.
TARGETS = (*(spec.name for spec in TOPIC_STAGE_SPECS), "projector")


def summary(counts: Counts) -> str:
    return (f"changed {counts.replayed:,} · unchanged {counts.unchanged:,} · kept "
            f"{counts.kept:,} · in flight {counts.in_flight:,}")


async def run_replay(settings: Settings, spec: ReplaySpec, say: Console) -> ReplayReport:
    """Run the replay (or dry run) with a progress bar over the offsets of its range."""
    from ..replay.engine import Replayer

    label = "dry run" if spec.dry_run else "replaying"
    with Progress(TextColumn(f"[bold]{label} {spec.stage.value}[/]"), BarColumn(),
                  TaskProgressColumn(), TextColumn("{task.fields[events]}  {task.fields[summary]}"),
                  TimeElapsedColumn(), console=say) as bar:
        task = bar.add_task("replay", total=None, events="planning", summary="")

        def advance(done: int, total: int, counts: Counts) -> None:
            bar.update(task, completed=done, total=max(total, 1),
                       events=f"{done:,}/{total:,} events", summary=summary(counts))

        def announce(replay_id: str, resumed: bool) -> None:
            bar.console.print(f"replay {replay_id} {'resumed' if resumed else 'started'} "
                              f"(if interrupted, resume it with --replay-id {replay_id})")

        report = await Replayer(settings, spec, progress=advance, announce=announce).run()
    print_report(report, say)
    return report


def print_report(report: ReplayReport, say: Console) -> None:
    c = report.counts
    title = ("dry run: nothing was published" if report.dry_run else
             f"replay {report.replay_id} {report.status}" + (" (resumed)" if report.resumed else ""))
    table = Table(title=title, show_header=False)
    verb = "would change" if report.dry_run else "changed (published)"
    for label, value in (("events in the range", report.offsets), ("events read", c.events_read),
                         (f"leads whose decision {verb}", c.replayed),
                         ("leads decided the same (not published)", c.unchanged),
                         ("leads kept as they are (routed, contacted, other statuses)", c.kept),
                         ("leads in flight (left to the live run)", c.in_flight),
                         ("leads unknown to the read models", c.missing),
                         ("inputs that failed (dead-lettered)" if not report.dry_run
                          else "inputs that would fail", c.failed),
                         ("inputs skipped (other tenant, repeats, not a lead)", c.skipped)):
        table.add_row(label, f"{value:,}")
    say.print(table)
    if report.samples:
        samples = Table(title=f"sample of decisions that would change ({len(report.samples)})")
        for column in ("lead", "status now", "before", "after", "then"):
            samples.add_column(column)
        for s in report.samples:
            samples.add_row(s.email, s.status, s.before, s.after, s.then or "")
        say.print(samples)
    if report.projector_lag:
        say.print(f"[yellow]note:[/] the read models are {report.projector_lag:,} lead events "
                  "behind the log; a replay waits for the projector to catch up")
    if c.in_flight:
        say.print(f"{c.in_flight:,} leads were in flight (their last event not yet consumed by "
                  "its stage): the live runs decide them. Run the replay again once the stages "
                  "have caught up; a new replay only publishes what changes.")
    if not report.dry_run and c.replayed:
        say.print("Changed leads flow downstream at the next runs of the following stages "
                  "(e.g. `leadflow tick qualify`).")


def replay(
    target: Annotated[str, typer.Argument(help="score, qualify or route; projector rebuilds the "
                                               "read models (contact cannot be replayed).")],
    from_: Annotated[str | None, typer.Option(
        "--from", help="Start: an ISO 8601 date or time (UTC unless it has an offset) or a "
                       "duration ago (30d, 12h).")] = None,
    to: Annotated[str | None, typer.Option(
        "--to", help="End, exclusive (default: the end of the log when the replay starts).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's leads.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Count the events and sample the decisions that would change; "
                          "publish nothing.")] = False,
    replay_id: Annotated[str | None, typer.Option(
        "--replay-id", help="Resume this replay (re-running the same command resumes too).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="Inputs per batch.")] = 500,
    swap: Annotated[bool, typer.Option(help="projector: swap the rebuilt models in.")] = True,
    config: ConfigOption = None,
) -> None:
    """Re-run a stage's input from a time through today's logic; contacted leads are kept.

    Outputs carry a replay id and flow downstream as usual. An interrupted replay resumes.
    """
    if target not in TARGETS:
        err.print(f"[bold red]error:[/] unknown target {target!r}; choose one of "
                  f"{', '.join(TARGETS)}")
        raise typer.Exit(2)
    settings = settings_for(config)
    if target == "projector":
        run_async(lambda: rebuild_with_progress(settings, console, swap=swap))
        return

    async def body() -> ReplayReport:
        rules_for(JobName(target))  # refuse contact before anything starts
        now = utcnow()
        spec = ReplaySpec(stage=JobName(target),
                          from_at=parse_time(from_, now=now) if from_ else None,
                          to_at=parse_time(to, now=now) if to else None, tenant=tenant,
                          dry_run=dry_run, replay_id=replay_id, batch_size=batch_size,
                          requested_by=who())
        return await run_replay(settings, spec, console)

    run_async(body)


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)
