"""When jobs run: schedules as pure functions of time. No I/O and no wall clock.

Cron expressions are wall-clock times in the schedule's timezone. A wall-clock time that
occurs twice (DST fall-back) fires once, at its first occurrence; one that never occurs (DST
spring-forward) fires once, at the moment the clocks jump. ``every <duration>`` schedules count
real time from 1970-01-01T00:00Z, whatever the timezone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice, takewhile
from uuid import UUID

from events import ALL_TENANTS, JobName, TickSource
from events.ids import tick_id
from services.runtime.config import Catchup, ClockConfig, JobConfig, PlatformConfig
from services.runtime.cron import EPOCH, every_interval, instants, micros
from services.runtime.durations import format_duration


@dataclass(frozen=True, slots=True)
class Schedule:
    """One schedule of one job and scope, with the policies the clock applies to it."""

    job: JobName
    expression: str
    timezone: str = "UTC"
    tenant_id: str = ALL_TENANTS
    campaign_id: str | None = None
    max_leads: int | None = None
    catchup: Catchup = Catchup.LATEST
    catchup_window: timedelta = timedelta(days=1)
    jitter_seconds: float = 0.0
    #: A tick emitted up to this late (after its jitter) still counts as on time.
    grace: timedelta = timedelta(seconds=60)
    max_catchup_ticks: int = 1000

    @property
    def scope(self) -> str:
        """Same text as TickEmitted.scope, so ids and records agree."""
        return f"{self.tenant_id}/{self.campaign_id or '*'}"

    @property
    def key(self) -> tuple[str, str]:
        return (self.job.value, self.scope)

    @property
    def interval(self) -> timedelta | None:
        """The period of an ``every`` schedule (None for cron)."""
        return every_interval(self.expression)


@dataclass(frozen=True, slots=True)
class DueTick:
    """An occurrence the clock emits now."""

    scheduled_for: datetime
    emit_at: datetime
    source: TickSource
    tick_id: UUID


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do at ``now``: ticks to emit, occurrences passed over, and the new cursor."""

    ticks: list[DueTick] = field(default_factory=list)
    passed_over: int = 0
    #: Every occurrence up to here is handled (emitted or passed over); None: nothing changed.
    cursor: datetime | None = None


# --- occurrences ---------------------------------------------------------------------------


def occurrences(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    """Scheduled instants (UTC) strictly after ``after``, in order, without end."""
    return instants(schedule.expression, schedule.timezone, after)


def next_run(schedule: Schedule, now: datetime) -> datetime | None:
    """The first scheduled instant after ``now`` (None: the schedule never fires again)."""
    return next(occurrences(schedule, now), None)


def between(schedule: Schedule, start: datetime, end: datetime) -> Iterator[datetime]:
    """Scheduled instants in ``[start, end)``."""
    for instant in occurrences(schedule, start - timedelta(microseconds=1)):
        if instant >= end:
            return
        yield instant


# --- jitter --------------------------------------------------------------------------------


def schedule_tick_id(schedule: Schedule, scheduled_for: datetime) -> UUID:
    return tick_id(schedule.job.value, schedule.scope, scheduled_for.astimezone(UTC))


def jitter(schedule: Schedule, scheduled_for: datetime) -> timedelta:
    """Deterministic delay for one tick: same tick, same delay; always before the next tick."""
    if schedule.jitter_seconds <= 0:
        return timedelta(0)
    bound = schedule.jitter_seconds
    following = next_run(schedule, scheduled_for)
    if following is not None:
        bound = min(bound, (following - scheduled_for).total_seconds())
    digest = hashlib.sha256(schedule_tick_id(schedule, scheduled_for).bytes).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64  # in [0, 1): never the full bound
    return timedelta(seconds=round(fraction * bound, 3))


def emit_time(schedule: Schedule, scheduled_for: datetime) -> datetime:
    return scheduled_for + jitter(schedule, scheduled_for)


# --- what is due ---------------------------------------------------------------------------


def plan_ticks(schedule: Schedule, last_emitted: datetime | None, now: datetime) -> Plan:
    """Ticks due at ``now`` given the last handled instant, with the catch-up policy applied.

    An occurrence is due once its emit time (scheduled_for + jitter) has come. It is on time
    (source=schedule) when at most ``grace`` late, else missed: missed ticks inside the
    catch-up window are emitted as source=catchup per the policy (none, latest, all), the rest
    passed over. ``last_emitted`` None (never ran) starts from ``now``: nothing is missed.
    """
    now = now.astimezone(UTC)
    start = last_emitted.astimezone(UTC) if last_emitted is not None else (
        now - timedelta(seconds=schedule.jitter_seconds))
    # Just before the oldest instant that could still be emitted (the window is inclusive).
    horizon = now - max(schedule.catchup_window, schedule.grace) - timedelta(
        seconds=schedule.jitter_seconds, microseconds=1)
    begin = max(start, horizon)
    on_time: list[DueTick] = []
    missed: list[datetime] = []
    cursor: datetime | None = None
    for instant in occurrences(schedule, begin):
        emit_at = emit_time(schedule, instant)
        if emit_at > now:
            break
        cursor = instant
        if now - emit_at <= schedule.grace:
            on_time.append(DueTick(instant, emit_at, TickSource.SCHEDULE,
                                   schedule_tick_id(schedule, instant)))
        else:
            missed.append(instant)
    if last_emitted is None:
        # A first start: what was due before it predates the clock, neither missed nor caught up
        # (a jitter longer than grace would otherwise make the newest one look missed).
        missed = []
        if cursor is None:
            cursor = begin  # the baseline, so later downtime is noticed
    caught_up = _apply_catchup(schedule, missed, now)
    ticks = [DueTick(i, emit_time(schedule, i), TickSource.CATCHUP, schedule_tick_id(schedule, i))
             for i in caught_up] + on_time
    # Occurrences older than the horizon were never enumerated above; they were missed too.
    older = count_between(schedule, start, begin) if begin > start else 0
    if older and cursor is None:
        cursor = begin  # handled (passed over) up to the horizon, so they are counted once
    return Plan(ticks=ticks, passed_over=older + len(missed) - len(caught_up), cursor=cursor)


#: Counting a cron schedule's occurrences means stepping through them; beyond this many, the
#: count stops (a clock must not spend minutes counting a year of per-minute ticks).
COUNT_LIMIT = 100_000


def count_between(schedule: Schedule, start: datetime, end: datetime) -> int:
    """How many scheduled instants lie in ``(start, end]``; at most COUNT_LIMIT for cron."""
    interval = schedule.interval
    if interval is not None:
        step = micros(interval)
        return micros(end - EPOCH) // step - micros(start - EPOCH) // step
    return sum(1 for _ in islice(takewhile(lambda i: i <= end, occurrences(schedule, start)),
                                 COUNT_LIMIT))


def _apply_catchup(schedule: Schedule, missed: list[datetime], now: datetime) -> list[datetime]:
    window = [i for i in missed if i >= now - schedule.catchup_window]
    if schedule.catchup is Catchup.NONE or not window:
        return []
    if schedule.catchup is Catchup.LATEST:
        return window[-1:]
    return window[-schedule.max_catchup_ticks:]


def due_ticks(schedule: Schedule, last_emitted: datetime | None, now: datetime) -> list[DueTick]:
    """The ticks to emit at ``now`` (see plan_ticks), in scheduled order."""
    return plan_ticks(schedule, last_emitted, now).ticks


def next_emit_at(schedule: Schedule, last_emitted: datetime | None, now: datetime) -> datetime | None:
    """When the next tick after the cursor is due (at or before ``now``: due already)."""
    start = last_emitted if last_emitted is not None else now
    following = next_run(schedule, start)
    return emit_time(schedule, following) if following is not None else None


# --- from config ---------------------------------------------------------------------------


def job_schedule(job: JobName, config: JobConfig, clock: ClockConfig) -> Schedule:
    """The job-wide schedule (ticks for every tenant)."""
    return Schedule(
        job=job, expression=config.schedule, timezone=config.timezone,
        catchup=config.catchup, catchup_window=config.catchup_window,
        jitter_seconds=config.jitter_seconds, grace=clock.grace,
        max_catchup_ticks=clock.max_catchup_ticks,
    )


def schedules_for(config: PlatformConfig) -> list[Schedule]:
    """Every schedule the clock runs: one per job, plus one per configured tenant/campaign scope.

    Disabled jobs and scopes keep ticking: their stages report job.skipped "disabled", so the
    night's record shows it.
    """
    result: list[Schedule] = []
    for job in JobName:
        jc = config.job(job)
        base = job_schedule(job, jc, config.clock)
        result.append(base)
        for scope in jc.scopes:
            result.append(Schedule(
                job=job, expression=scope.schedule, timezone=scope.timezone,
                tenant_id=scope.tenant, campaign_id=scope.campaign,
                max_leads=scope.max_leads_per_run, catchup=jc.catchup,
                catchup_window=jc.catchup_window, jitter_seconds=jc.jitter_seconds,
                grace=config.clock.grace, max_catchup_ticks=config.clock.max_catchup_ticks,
            ))
    return result


def describe(schedule: Schedule) -> str:
    """Short human text: '0 2 * * * (Europe/Berlin)' or 'every 5m'."""
    interval = schedule.interval
    if interval is not None:
        return f"every {format_duration(interval)}"
    return f"{schedule.expression} ({schedule.timezone})"
