"""Each stage alone over a backlog: score, qualify, route and contact (proof mode) in turn, each
its own `leadflow run <job>` process, each drained by one manual tick whose cap covers the
backlog. A stage's backlog is what the stage before it wrote (score reads the imported leads),
so every input is a real event from the product; only the stage being measured is running.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from events import JobName

from ..clock.manual import manual_tick
from ..pipeline.settings import Settings
from ..projector.follow import RunFollower
from ..runtime.bus import ensure_topics, publish_once
from ..runtime.errors import InfrastructureError
from . import procstat
from .leads import publish_backlog
from .workspace import STAGE_JOBS, scratch_database, stack_for, wait_owned


@dataclass(frozen=True, slots=True)
class StageRun:
    """One stage's run over its backlog, and its process's figures."""

    job: JobName
    leads: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float

    @property
    def rate(self) -> float:
        return self.leads / self.seconds if self.seconds else 0.0


async def stage_runs(settings: Settings, n: int, workdir: Path, say: Console) -> list[StageRun]:
    """Import ``n`` leads, then run each stage alone over what is waiting for it."""
    async with scratch_database(settings, "stages") as scratch:
        await ensure_topics(scratch.kafka_bootstrap_servers, scratch.pipeline.topics)
        await publish_backlog(scratch, n, say)
        return [await stage_run(scratch, job, n, workdir / job.value, say) for job in STAGE_JOBS]


async def stage_run(settings: Settings, job: JobName, n: int, workdir: Path,
                    say: Console) -> StageRun:
    """Start ``job``'s process, tick it once with a cap of ``n``, measure the run."""
    stack = stack_for(settings, workdir)
    follower = RunFollower(settings.kafka_bootstrap_servers, settings.prefix)
    try:
        with say.status(f"{job.value}: starting its process"):
            proc = stack.spawn(job.value)
            await wait_owned(settings, [job], [proc.pid], check=stack.check_alive)
            await follower.start()
        with say.status(f"{job.value}: one run over its backlog"):
            before = procstat.read(proc.pid)
            tick = manual_tick(job, requested_by="leadflow bench pipeline", max_leads=n)
            await publish_once(settings.kafka_bootstrap_servers, settings.pipeline.topics, [tick],
                               client_id="bench-tick")
            run = await follower.wait(tick.tick_id, timeout=7200)
            after = procstat.read(proc.pid)
    finally:
        await follower.stop()
        stack.stop()
    if run.status != "completed" or not run.leads_processed:
        raise InfrastructureError(f"the {job.value} run ended {run.status} after "
                                  f"{run.leads_processed} leads: {run.error}; see {stack.log_dir}")
    result = StageRun(job, run.leads_processed, run.duration_seconds or 0.0,
                      after.cpu_seconds - before.cpu_seconds, after.peak_rss_mb)
    say.print(f"{job.value}: {result.leads:,} leads in {result.seconds:.2f}s "
              f"({result.rate:,.0f} leads/s)")
    return result
