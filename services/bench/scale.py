"""`leadflow bench scale`: one stage's throughput with 1, 2 and 4 instances on the same backlog.

Each trial gets fresh topics holding the same backlog (the same leads under a tenant of its
own, since route and contact keep state per lead),
starts N `leadflow run <job>` processes (score, qualify, route, or contact in proof mode,
each over its input events) with distinct instance ids, waits until they split the
partitions, sends one manual tick whose cap covers the whole backlog, and measures that run:
leads processed / run duration (first part started to last part completed).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from events import (
    TOPIC_STAGES,
    Assignment,
    Envelope,
    JobName,
    Lead,
    LeadCreated,
    LeadQualified,
    LeadRouted,
    LeadScored,
    LeadStatus,
    Qualification,
    ScoreCard,
    ids,
)

from ..clock.manual import manual_tick
from ..pipeline.settings import Settings
from ..pipeline.stack import Stack
from ..projector.follow import RunFollower
from ..runtime.bus import Publisher, ensure_topics, make_broker
from ..runtime.errors import InfrastructureError
from .workspace import wait_owned

#: The jobs a trial can scale (each drains a backlog of its input events).
JOBS = TOPIC_STAGES


@dataclass(frozen=True, slots=True)
class Trial:
    instances: int
    leads: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.leads / self.seconds if self.seconds else 0.0


def backlog(n: int, tenant: str = "bench") -> list[Envelope]:
    """The same ``n`` new leads of ``tenant`` for every trial (deterministic ids)."""
    at = datetime(2026, 11, 1, tzinfo=UTC)
    industries = ("software", "retail", "fintech", "healthcare", "media")
    events: list[Envelope] = []
    for i in range(n):
        email = f"bench{i}@company{i % 997}.com"
        lead = Lead(lead_id=ids.lead_id(tenant, email), tenant_id=tenant, campaign_id="scale",
                    email=email, title=("CTO", "VP Sales", "Engineer")[i % 3],
                    company=f"Company{i % 997}", industry=industries[i % 5],
                    employees=(i * 37) % 5000, country=("US", "DE", "BR")[i % 3],
                    status=LeadStatus.NEW, version=1, created_at=at, updated_at=at)
        events.append(LeadCreated(event_id=ids.event_id(lead.lead_id, "lead.created"),
                                  occurred_at=at, recorded_at=at, tenant_id=tenant, lead=lead))
    return events


#: Each stage's input: the event class and the lead's status when it arrives.
_INPUTS: dict[JobName, tuple[type[LeadScored | LeadQualified | LeadRouted], LeadStatus, int]] = {
    JobName.QUALIFY: (LeadScored, LeadStatus.SCORED, 2),
    JobName.ROUTE: (LeadQualified, LeadStatus.QUALIFIED, 3),
    JobName.CONTACT: (LeadRouted, LeadStatus.ROUTED, 4),
}


def input_backlog(job: JobName, n: int, tenant: str) -> list[Envelope]:
    """``backlog``'s leads as ``job`` receives them (new for score, scored for qualify,
    qualified for route, routed for contact). Route and contact keep state per lead, so each
    trial gets leads of its own (its own ``tenant``)."""
    if job not in _INPUTS:
        return backlog(n, tenant)
    cls, status, version = _INPUTS[job]
    events: list[Envelope] = []
    for created in backlog(n, tenant):
        assert isinstance(created, LeadCreated)
        lead = created.lead.evolve(
            status=status, version=version,
            score=ScoreCard(value=80, factors={"industry": 30}, model_version="bench"),
            qualification=Qualification(qualified=True) if version >= 3 else None,
            route=Assignment(segment="bench", sequence_id="standard", owner="bench")
            if version >= 4 else None)
        events.append(cls(event_id=ids.event_id(lead.lead_id, cls.model_fields["type"].default),
                          occurred_at=created.occurred_at, recorded_at=created.recorded_at,
                          tenant_id=lead.tenant_id, lead=lead))
    return events


async def trial(settings: Settings, config: Path | None, job: JobName, events: Sequence[Envelope],
                n: int, workdir: Path, say: Console) -> Trial:
    """One run of ``n`` instances over a fresh copy of the backlog."""
    prefix = f"{settings.prefix}x{n}."
    topics = settings.pipeline.topics.model_copy(update={"prefix": prefix})
    trial_settings = settings.using(settings.pipeline.model_copy(update={"topics": topics}))
    await ensure_topics(settings.kafka_bootstrap_servers, topics)
    broker = make_broker(settings.kafka_bootstrap_servers, client_id="bench-scale")
    await broker.start()
    try:
        publisher = Publisher(broker, topics)
        for start in range(0, len(events), 5000):
            await publisher.publish(events[start:start + 5000])
        stack = Stack(config=config, services=(), workdir=workdir / f"x{n}",
                      database_url=settings.database_url, bootstrap=settings.kafka_bootstrap_servers,
                      extra_env={"LEADFLOW_TOPIC_PREFIX": prefix, "LEADFLOW_LOG_LEVEL": "WARNING"})
        stack.log_dir.mkdir(parents=True, exist_ok=True)
        say.print(f"{n} instance(s): {len(events):,} leads waiting; starting processes")
        try:
            procs = [stack.spawn(job.value, instance=f"bench{n}-{i}") for i in range(n)]
            await wait_owned(trial_settings, [job], [p.pid for p in procs],
                             check=stack.check_alive)
            follower = RunFollower(settings.kafka_bootstrap_servers, prefix)
            await follower.start()
            try:
                tick = manual_tick(job, requested_by="bench", max_leads=len(events))
                await publisher.publish([tick])
                run = await follower.wait(tick.tick_id, timeout=1800)
            finally:
                await follower.stop()
        finally:
            stack.stop()
    finally:
        await broker.stop()
    if run.status != "completed":
        raise InfrastructureError(f"the run with {n} instances ended {run.status}: {run.error}")
    result = Trial(n, run.leads_processed, run.duration_seconds or 0.0)
    say.print(f"{n} instance(s): {result.leads:,} leads in {result.seconds:.2f}s "
              f"({result.rate:,.0f} leads/s)")
    return result


async def bench_scale(settings: Settings, say: Console, *, leads: int, counts: Sequence[int],
                      config: Path | None, job: JobName = JobName.SCORE) -> list[Trial]:
    """Run every trial in turn and print them side by side."""
    workdir = Path(tempfile.mkdtemp(prefix="leadflow-bench-scale-"))
    results = [await trial(settings, config, job, input_backlog(job, leads, f"bench-x{n}"), n,
                           workdir, say)
               for n in counts]
    base = next((t.rate for t in results if t.instances == 1), results[0].rate)
    table = Table(title=f"{job.value}: one run over the same {leads:,}-lead backlog")
    for column in ("instances", "leads", "run seconds", "leads/s", "vs 1 instance"):
        table.add_column(column, justify="right")
    for t in results:
        table.add_row(str(t.instances), f"{t.leads:,}", f"{t.seconds:.2f}", f"{t.rate:,.0f}",
                      f"{t.rate / base:.2f}x" if base else "-")
    say.print(table)
    say.print("Every instance, the broker and Postgres share this machine's CPUs: past the core "
              "count, more instances add parallel I/O waits, not compute.")
    return results
