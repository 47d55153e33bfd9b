"""Every name the system shares: topics, jobs, statuses, tick sources. Defined once."""

from __future__ import annotations

from enum import StrEnum


class Topic(StrEnum):
    """Logical topic names; the physical name is ``prefix + value``."""

    LEADS_NEW = "leads.new"
    LEADS_SCORED = "leads.scored"
    LEADS_QUALIFIED = "leads.qualified"
    LEADS_REJECTED = "leads.rejected"
    LEADS_ROUTED = "leads.routed"
    LEADS_CONTACTED = "leads.contacted"
    CLOCK_TICKS = "clock.ticks"
    JOBS_EVENTS = "jobs.events"
    CONTROL = "control"
    LEADS_DLQ = "leads.dlq"

    def physical(self, prefix: str = "") -> str:
        """The broker-side name of this topic under a deployment prefix."""
        return f"{prefix}{self.value}"


LEAD_TOPICS: tuple[Topic, ...] = (
    Topic.LEADS_NEW,
    Topic.LEADS_SCORED,
    Topic.LEADS_QUALIFIED,
    Topic.LEADS_REJECTED,
    Topic.LEADS_ROUTED,
    Topic.LEADS_CONTACTED,
)


class JobName(StrEnum):
    """Scheduled jobs. A tick for a job is a run of that job."""

    HARVEST = "harvest"
    SCORE = "score"
    QUALIFY = "qualify"
    ROUTE = "route"
    CONTACT = "contact"
    RETENTION = "retention"


#: The five lead stages in pipeline order.
PIPELINE: tuple[JobName, ...] = (
    JobName.HARVEST,
    JobName.SCORE,
    JobName.QUALIFY,
    JobName.ROUTE,
    JobName.CONTACT,
)

#: Which topics a stage drains when ticked (harvest reads files, not a topic).
STAGE_INPUTS: dict[JobName, tuple[Topic, ...]] = {
    JobName.HARVEST: (),
    JobName.SCORE: (Topic.LEADS_NEW,),
    JobName.QUALIFY: (Topic.LEADS_SCORED,),
    JobName.ROUTE: (Topic.LEADS_QUALIFIED,),
    JobName.CONTACT: (Topic.LEADS_ROUTED,),
    JobName.RETENTION: (),
}

#: The stages that drain an input topic, in pipeline order (harvest reads files).
TOPIC_STAGES: tuple[JobName, ...] = tuple(job for job in PIPELINE if STAGE_INPUTS[job])


def stage_group(job: JobName, prefix: str = "") -> str:
    """Consumer group that shares a stage's input partitions between its instances."""
    return f"{prefix}stage.{job.value}"


class LeadStatus(StrEnum):
    NEW = "NEW"
    SCORED = "SCORED"
    QUALIFIED = "QUALIFIED"
    REJECTED = "REJECTED"
    ROUTED = "ROUTED"
    CONTACTED = "CONTACTED"


class TickSource(StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    CATCHUP = "catchup"
    BACKFILL = "backfill"
    RETRY = "retry"


class RunStatus(StrEnum):
    """Status of a run as the read models show it (the seed dashboard's vocabulary)."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


class Health(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    FAILED = "failed"

    @property
    def severity(self) -> int:
        """0 healthy, 1 degraded, 2 failed: the worse, the higher (also the gauge's value)."""
        return list(Health).index(self)
