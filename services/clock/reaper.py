"""Run parts whose instance died mid-run (kill -9, a lost machine): nobody would ever report
them, so the run would show "running" forever and `tick --wait` would never end. The active
clock reports each as `job.failed` with reason `lost`, for the instance; the clock's retry
policy then applies. The same holds for the share of an instance that died after the tick but
before it ran it (it owned partitions at the tick, so nobody else ran them): once every part
that did report has ended a while ago, the partitions nobody covered are reported `lost`.
The decisions are pure; ``lost_parts`` and ``uncovered_runs`` are the thin reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from events import JobFailed, JobName, RunCounts, RunInfo, TickSource
from events.ids import job_event_id
from events.runs import PartRow, RunRow
from services.projector.queries import run_models

#: An instance heartbeats at least every 10 s; silent this long, it is gone.
LOST_AFTER = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class LostPart:
    """A running part whose instance stopped heartbeating."""

    run: RunRow
    part: PartRow
    last_seen: datetime


def lost_part_failed(lost: LostPart, now: datetime) -> JobFailed:
    """The job.failed the dead instance would have published, with what it had reported."""
    run, part = lost.run, lost.part
    started = part.started_at or run.scheduled_for
    return JobFailed(
        event_id=job_event_id(run.run_id, part.part, "failed"), occurred_at=now, recorded_at=now,
        tenant_id=run.tenant_id, correlation_id=run.run_id, causation_id=run.run_id,
        run_id=run.run_id, job=JobName(run.job), part=part.part,
        run=RunInfo(scheduled_for=run.scheduled_for, source=TickSource(run.source),
                    max_leads=run.max_leads, requested_by=run.requested_by,
                    retry_of=run.retry_of, attempt=run.attempt),
        started_at=started, completed_at=now,
        duration_seconds=max(0.0, (now - started).total_seconds()),
        counts=RunCounts(leads_processed=part.leads_processed,
                         leads_succeeded=part.leads_succeeded, leads_failed=part.leads_failed),
        reason="lost",
        error=(f"instance {part.part} stopped reporting during the run (last seen "
               f"{lost.last_seen.isoformat(timespec='seconds')}); its uncommitted batch is "
               "redone by the next run"),
        partitions=tuple(part.partitions), partitions_total=part.partitions_total,
        backlog=part.backlog,
    )


@dataclass(frozen=True, slots=True)
class UncoveredRun:
    """A run whose parts all ended, leaving input partitions nobody reported."""

    run: RunRow
    missing: tuple[int, ...]


#: The part name under which the partitions nobody reported are reported lost.
UNREPORTED = "unreported"


def missing_partitions(parts: list[PartRow], total: int) -> tuple[int, ...]:
    """Input partitions of a run that none of its parts covered."""
    covered = {p for part in parts for p in part.partitions}
    return tuple(p for p in range(total) if p not in covered)


def uncovered_failed(uncovered: UncoveredRun, now: datetime) -> JobFailed:
    """The job.failed that closes a run left uncovered: a part for the missing partitions."""
    run = uncovered.run
    started = run.started_at or run.scheduled_for
    missing = ", ".join(str(p) for p in uncovered.missing)
    return JobFailed(
        event_id=job_event_id(run.run_id, UNREPORTED, "failed"), occurred_at=now,
        recorded_at=now, tenant_id=run.tenant_id, correlation_id=run.run_id,
        causation_id=run.run_id, run_id=run.run_id, job=JobName(run.job), part=UNREPORTED,
        run=RunInfo(scheduled_for=run.scheduled_for, source=TickSource(run.source),
                    max_leads=run.max_leads, requested_by=run.requested_by,
                    retry_of=run.retry_of, attempt=run.attempt),
        started_at=started, completed_at=now,
        duration_seconds=max(0.0, (now - started).total_seconds()),
        counts=RunCounts(), reason="lost",
        error=(f"partitions {missing} were not run: the instance that owned them when the tick "
               "came stopped before running it; their leads wait for the next run"),
        partitions=uncovered.missing, partitions_total=run.partitions_total, backlog=None,
    )


async def uncovered_runs(conn: asyncpg.Pool | asyncpg.Connection,
                         lost_after: timedelta = LOST_AFTER) -> list[UncoveredRun]:
    """Running runs with input partitions nobody covered, whose parts all ended over
    ``lost_after`` ago (a live instance late with the tick would have reported by then)."""
    runs = await run_models.running_runs_without_cover(conn, lost_after)
    if not runs:
        return []
    parts = await run_models.parts_by_run(conn, [run.run_id for run in runs])
    found = []
    for run in runs:
        missing = missing_partitions(parts.get(run.run_id, []), run.partitions_total)
        if missing:
            found.append(UncoveredRun(run, missing))
    return found


async def lost_parts(conn: asyncpg.Pool | asyncpg.Connection,
                     lost_after: timedelta = LOST_AFTER) -> list[LostPart]:
    """Running parts (in the read models) of instances silent for ``lost_after``. Parts of
    processes that do not heartbeat (an import, the projector's retention) are not judged."""
    found = await run_models.running_parts_of_silent_instances(conn, lost_after)
    if not found:
        return []
    run_ids = list({r["run_id"] for r in found})
    runs = await run_models.runs_by_id(conn, run_ids)
    parts = {(p.run_id, p.part): p
             for run_parts in (await run_models.parts_by_run(conn, run_ids)).values()
             for p in run_parts}
    return [LostPart(run=runs[r["run_id"]], part=parts[(r["run_id"], r["part"])],
                     last_seen=r["last_seen"])
            for r in found if r["run_id"] in runs and (r["run_id"], r["part"]) in parts]
