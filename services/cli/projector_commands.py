"""`leadflow projector ...`: rebuild the read models from the log; adopt a replaced broker's log."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from ..pipeline.settings import Settings
from ..projector.rebuild import rebuild
from .common import ConfigOption, console, run_async, settings_for

projector_app = typer.Typer(no_args_is_help=True,
                             help="Read models: rebuild them from the log, adopt a new log.")


async def rebuild_with_progress(settings: Settings, console: Console, *, swap: bool) -> None:
    """Rebuild into the shadow schema with a live progress bar (events/s and remaining lag)."""
    with Progress(TextColumn("[bold]rebuilding[/]"), BarColumn(), TaskProgressColumn(),
                  TextColumn("{task.completed:,.0f} events  {task.fields[rate]:,.0f}/s  "
                             "lag {task.fields[lag]}"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("rebuild", total=None, rate=0.0, lag="?")

        def advance(n: int, lag: int | None) -> None:
            done = progress.tasks[task].completed + n
            elapsed = progress.tasks[task].elapsed or 1e-9
            total = done + lag if lag is not None else None
            progress.update(task, completed=done, total=total, rate=done / elapsed,
                            lag="?" if lag is None else f"{lag:,}")

        report = await rebuild(settings, swap=swap, progress=advance)
    console.print(f"{report.events:,} events folded in {report.seconds:.1f}s "
                  f"({report.rate:,.0f} events/s); "
                  + ("swapped in; the previous models were dropped" if report.swapped
                     else "left in schema leadflow_read_rebuild (not swapped)"))


@projector_app.command("rebuild")
def rebuild_command(
    config: ConfigOption = None,
    swap: Annotated[bool, typer.Option(help="Swap the rebuilt models in when done.")] = True,
) -> None:
    """Replay the whole log into a shadow schema while the live one serves, then swap."""
    settings = settings_for(config)
    run_async(lambda: rebuild_with_progress(settings, console, swap=swap))


@projector_app.command("adopt-log")
def adopt_log_command(
    config: ConfigOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do it (without: say what it is).")] = False,
) -> None:
    """After a broker was replaced: keep the read models and fold the new log on top of them.

    Partitions whose log ends before the offset the read models were folded to are read again
    from their start (ids already folded are not counted twice). Stop the projector first."""
    from ..projector.service import Projector

    if not yes:
        console.print("adopt-log folds the broker's current log on top of the read models, for "
                      "partitions whose log ends before the read models' offsets (a replaced "
                      "broker). Stop the projector, then run it again with --yes.")
        raise typer.Exit(2)
    settings = settings_for(config)

    async def adopt() -> dict[tuple[str, int], int]:
        projector = Projector(settings, adopt_log=True)
        await projector.start(wait_for_lock=False)
        try:
            await projector.catch_up(idle_polls=3)
        finally:
            await projector.stop()
        return projector.adopted

    adopted = run_async(adopt)
    for (topic, partition), offset in sorted(adopted.items()):
        console.print(f"{topic}[{partition}]: was at offset {offset:,}; now follows the new log")
    console.print(f"{len(adopted)} partition(s) adopted; start the projector again"
                  if adopted else "every partition's log holds the read models' offsets; "
                                  "nothing to adopt")
