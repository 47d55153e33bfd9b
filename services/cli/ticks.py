"""`leadflow tick`: publish a manual tick, optionally follow the run to its end."""

from __future__ import annotations

from rich.console import Console

from events import JobName

from ..clock.manual import manual_tick
from ..pipeline.settings import Settings
from ..projector.follow import RunFollower
from ..runtime.bus import Publisher, make_broker


async def publish_manual_tick(settings: Settings, job: JobName, *, requested_by: str,
                              max_leads: int | None, tenant: str | None, campaign: str | None,
                              wait: bool, timeout: float, console: Console) -> bool:
    """Publish the tick; with ``wait``, print the run's result. Returns True if the run failed."""
    tick = manual_tick(job, requested_by=requested_by, max_leads=max_leads, tenant_id=tenant,
                       campaign_id=campaign)
    broker = make_broker(settings.kafka_bootstrap_servers, client_id="leadflow-cli")
    follower = RunFollower(settings.kafka_bootstrap_servers, settings.prefix) if wait else None
    await broker.start()
    try:
        if follower is not None:
            await follower.start()
        await Publisher(broker, settings.pipeline.topics).publish_one(tick)
        console.print(f"tick {tick.tick_id} published for {job.value}"
                      + (f" (max {max_leads} leads)" if max_leads else ""))
        if follower is None:
            return False
        with console.status(f"waiting for the {job.value} run to finish..."):
            run = await follower.wait(tick.tick_id, timeout, job=job.value)
        colour = {"completed": "green", "failed": "red", "skipped": "yellow"}.get(run.status, "white")
        console.print(
            f"[{colour}]{run.status}[/]: {run.leads_processed} processed, "
            f"{run.leads_succeeded} succeeded, {run.leads_failed} failed"
            + (f" in {run.duration_seconds:.2f}s" if run.duration_seconds is not None else "")
            + (f" - {run.reason}: {run.error}" if run.error else "")
            + (f" - {run.reason}" if run.status == "skipped" and run.reason else ""))
        return run.status == "failed"
    finally:
        if follower is not None:
            await follower.stop()
        await broker.stop()
