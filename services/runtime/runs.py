"""A tick is a run: this module turns one tick into job.started and job.completed / failed / skipped.

What a run does is an Executor's business (drain a topic, read a file, prune tables); the
controller owns the lifecycle around it: policies, the shared budget, the deadline, reporting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol
from uuid import UUID

import asyncpg

from events import (
    JobCompleted,
    JobEventFields,
    JobFailed,
    JobName,
    JobSkipped,
    JobStarted,
    RunCounts,
    RunInfo,
    TickEmitted,
    TickSource,
    utcnow,
)
from events.errors import LeadflowError
from events.ids import job_event_id

from .budget import RunBudget
from .bus import Publisher
from .config import JobConfig, Overlap

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunContext:
    """What a run knows: its id, the tick, and the decision time all its outputs carry."""

    run_id: UUID
    tick: TickEmitted
    job: JobName
    instance_id: str
    replay_id: str | None = None
    #: Set when the service is stopping: executors end the run after the batch in hand.
    stop: asyncio.Event = field(default_factory=asyncio.Event, compare=False)

    @property
    def at(self) -> datetime:
        """Decision time: the tick's scheduled_for, so a replay decides the same."""
        return self.tick.scheduled_for

    @property
    def stopping(self) -> bool:
        return self.stop.is_set()


@dataclass(slots=True)
class RunResult:
    counts: RunCounts = field(default_factory=RunCounts)
    partitions: tuple[int, ...] = ()
    partitions_total: int = 0
    backlog: int | None = None
    timed_out: bool = False
    #: Set when the run did part of its work but could not do all of it (it reports failed).
    error: str | None = None
    #: With ``error``: the tenants whose work failed (empty: the run's failure is everyone's).
    failed_tenants: tuple[str, ...] = ()


class Executor(Protocol):
    """The work of one job inside a run."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def execute(self, ctx: RunContext, budget: RunBudget, deadline: float) -> RunResult:
        """Do at most ``budget`` leads of work before ``deadline`` (a time.monotonic value)."""
        ...


def run_info(tick: TickEmitted) -> RunInfo:
    return RunInfo(scheduled_for=tick.scheduled_for, source=tick.source, max_leads=tick.max_leads,
                   requested_by=tick.requested_by, retry_of=tick.retry_of, attempt=tick.attempt,
                   campaign_id=tick.campaign_id)


@dataclass(frozen=True, slots=True)
class RunSpan:
    """When a run went on this instance; ``buffered``: a tick that arrived meanwhile ran after it."""

    started: datetime
    ended: datetime
    buffered: bool = False


@dataclass(slots=True)
class Streak:
    """Scheduled ticks skipped for overlapping one run here, reported once: under the first."""

    span: RunSpan
    first: TickEmitted
    ticks: int = 1


def overlap_verdict(policy: Overlap, tick: TickEmitted,
                    spans: Sequence[RunSpan]) -> tuple[str | None, int | None]:
    """(skip reason, index of the span whose one buffer slot the tick takes) for a tick that
    arrived (recorded_at) while an earlier run here was going. Only scheduled ticks are subject:
    manual, catch-up, backfill and retry ticks are explicit requests and always run in turn."""
    if policy is Overlap.ALLOW or tick.source is not TickSource.SCHEDULE:
        return None, None
    during = next((i for i, s in enumerate(spans) if s.started <= tick.recorded_at < s.ended), None)
    if during is None:
        return None, None
    if policy is Overlap.BUFFER_ONE and not spans[during].buffered:
        return None, during
    return "overlap", None


class ShuttingDown(LeadflowError):
    """A tick that arrived while the service stops: left uncommitted, it runs after a restart."""


class RunController:
    """Runs one job's ticks on this instance and reports each run's part as job events."""

    #: Extra time past timeout_seconds before a run stuck inside one batch is cancelled.
    HARD_STOP_GRACE = 30.0
    #: A streak of overlap skips is reported once no tick extended it for this long.
    STREAK_QUIET_SECONDS = 2.0
    #: Run spans kept for the overlap policy. Spans no later tick can fall in are dropped as
    #: scheduled ticks come (``_forget_spans``); this only bounds memory when none come.
    MAX_SPANS = 10_000

    def __init__(self, job: JobName, config: JobConfig, executor: Executor, publisher: Publisher,
                 pool: asyncpg.Pool, instance_id: str) -> None:
        self.job = job
        self.config = config
        self.executor = executor
        self.publisher = publisher
        self.pool = pool
        self.instance_id = instance_id
        self.runs_done = 0
        self.spans: deque[RunSpan] = deque(maxlen=self.MAX_SPANS)
        self._recent_ticks: deque[UUID] = deque(maxlen=1024)
        self._streak: Streak | None = None
        self._streak_timer: asyncio.TimerHandle | None = None
        self._streak_task: asyncio.Task[None] | None = None
        self._streak_lock = asyncio.Lock()
        self._stopping = False
        self._current: tuple[RunContext, asyncio.Future[RunResult]] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def _envelope(self, tick: TickEmitted, kind: str) -> JobEventFields:
        now = utcnow()
        return JobEventFields(
            event_id=job_event_id(tick.tick_id, self.instance_id, kind),
            occurred_at=now, recorded_at=now, tenant_id=tick.tenant_id,
            correlation_id=tick.tick_id, causation_id=tick.tick_id, replay_id=None,
            run_id=tick.tick_id, job=self.job, part=self.instance_id, run=run_info(tick),
        )

    def cap(self, tick: TickEmitted) -> int:
        """The most leads a run of ``tick`` takes, across every instance."""
        return tick.max_leads or self.config.max_leads_per_run

    def skip_reason(self, tick: TickEmitted) -> str | None:
        """Why this tick must not run here (None: run it)."""
        if not self.config.enabled:
            return "disabled"
        if any(not s.enabled for s in self.config.scopes
               if (s.tenant, s.campaign) == (tick.tenant_id, tick.campaign_id)):
            return "disabled"
        self._forget_spans(tick)
        reason, slot = overlap_verdict(self.config.overlap, tick, self.spans)
        if slot is not None:
            self.spans[slot] = replace(self.spans[slot], buffered=True)
        return reason

    def _forget_spans(self, tick: TickEmitted) -> None:
        """Drop the spans of runs that ended before this scheduled tick was recorded: ticks come
        in the order the clock recorded them, so no later tick falls in those. What is kept is
        every run since the oldest tick still to come, however far this instance lags (after a
        restart it first runs every tick it missed). A fixed window of the last 32 runs made an
        instance that lagged by more than 32 runs run every tick, skipping none, and never
        catch up while its runs took longer than the schedule's interval."""
        if tick.source is not TickSource.SCHEDULE:
            return
        while self.spans and self.spans[0].ended <= tick.recorded_at:
            self.spans.popleft()

    async def executor_skip_reason(self, tick: TickEmitted) -> str | None:
        """The executor's own reason to skip (e.g. contact: campaign paused, kill switch), if it
        defines ``async skip_reason(tick)``; a reason that cannot be read lets the run decide."""
        check = getattr(self.executor, "skip_reason", None)
        if check is None:
            return None
        try:
            return await check(tick)
        except Exception:  # the run itself re-checks each send and fails if it must
            log.warning("run %s: skip check failed; running", tick.tick_id, exc_info=True,
                        extra={"action": "skip_check_failed"})
            return None

    async def on_tick(self, tick: TickEmitted) -> None:
        """Handle one tick end to end; raises only if the outcome could not be reported."""
        if tick.job is not self.job:
            return
        if self._stopping:
            raise ShuttingDown(f"{self.job.value} is stopping; tick {tick.tick_id} runs after a "
                               "restart")
        if tick.tick_id in self._recent_ticks:  # the same tick twice (a clock crash): one run
            log.info("tick %s repeated; ignored", tick.tick_id, extra={"action": "tick_repeated"})
            return
        self._recent_ticks.append(tick.tick_id)
        reason = self.skip_reason(tick)
        if reason == "overlap":
            await self._extend_streak(tick)
            return
        await self.flush_streak()
        if reason is None:
            reason = await self.executor_skip_reason(tick)
        if reason is not None:
            await self.publisher.publish_one(JobSkipped(**self._envelope(tick, "skipped"),
                                                        reason=reason))
            log.info("run %s skipped: %s", tick.tick_id, reason, extra={"action": "run_skipped"})
            return
        started = utcnow()
        self._idle.clear()
        try:
            await self.run(tick)
        finally:
            self.spans.append(RunSpan(started, utcnow()))
            self._idle.set()

    async def _extend_streak(self, tick: TickEmitted) -> None:
        """Count an overlap skip into the streak of the run it overlapped (reporting the
        previous streak if this one overlapped another run)."""
        span = next(s for s in self.spans if s.started <= tick.recorded_at < s.ended)
        async with self._streak_lock:
            if self._streak is not None and self._streak.span == span:
                self._streak.ticks += 1
            else:
                if self._streak is not None:
                    await self._report_streak(self._streak)
                self._streak = Streak(span, tick)
            log.info("run %s skipped: overlap (%d in a row)", tick.tick_id, self._streak.ticks,
                     extra={"action": "run_skipped"})
            self._arm_streak_timer()

    def _arm_streak_timer(self) -> None:
        if self._streak_timer is not None:
            self._streak_timer.cancel()
        loop = asyncio.get_running_loop()
        self._streak_timer = loop.call_later(self.STREAK_QUIET_SECONDS, self._flush_later)

    def _flush_later(self) -> None:
        self._streak_task = asyncio.get_running_loop().create_task(
            self._flush_quietly(), name=f"{self.job.value}-overlap-streak")

    async def _flush_quietly(self) -> None:
        try:
            await self.flush_streak()
        except Exception:  # the next tick or the shutdown reports it again
            log.warning("overlap streak not reported yet", exc_info=True,
                        extra={"action": "streak_report_failed"})

    async def flush_streak(self) -> None:
        """Report the streak of overlap skips in progress, if any (also on shutdown)."""
        async with self._streak_lock:
            if self._streak_timer is not None:
                self._streak_timer.cancel()
                self._streak_timer = None
            if self._streak is not None:
                await self._report_streak(self._streak)
                self._streak = None

    async def _report_streak(self, streak: Streak) -> None:
        await self.publisher.publish_one(JobSkipped(**self._envelope(streak.first, "skipped"),
                                                    reason="overlap", ticks=streak.ticks))

    async def run(self, tick: TickEmitted) -> RunResult | None:
        started_at = utcnow()
        clock = time.monotonic()
        await self.publisher.publish_one(JobStarted(**self._envelope(tick, "started"),
                                                    started_at=started_at))
        ctx = RunContext(run_id=tick.tick_id, tick=tick, job=self.job, instance_id=self.instance_id)
        total = self.cap(tick)
        budget = RunBudget(self.pool, tick.tick_id, self.job.value, total)
        deadline = clock + self.config.timeout_seconds
        log.info("run %s of %s started (source=%s, cap=%d)", tick.tick_id, self.job.value,
                 tick.source.value, total, extra={"action": "run_started"})
        try:
            await budget.open()
            work = asyncio.ensure_future(asyncio.wait_for(
                self.executor.execute(ctx, budget, deadline),
                timeout=self.config.timeout_seconds + self.HARD_STOP_GRACE,
            ))
            self._current = (ctx, work)
            result = await work
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self._stopping or (task is not None and task.cancelling()):
                raise  # this handler itself is being cancelled: nothing may be swallowed
            await self._report_failure(tick, started_at, clock, RunResult(), "stopped",
                                       "the service stopped before the run finished; the batch "
                                       "in hand was not committed and will be processed again")
            log.warning("run %s abandoned: the service is stopping", tick.tick_id,
                        extra={"action": "run_stopped"})
            return None
        except Exception as exc:
            await self._report_failure(tick, started_at, clock, RunResult(), "error",
                                       f"{type(exc).__name__}: {exc}")
            log.exception("run %s failed", tick.tick_id, extra={"action": "run_failed"})
            return None
        finally:
            self._current = None
        if ctx.stopping and result.timed_out:
            await self._report_failure(tick, started_at, clock, result, "stopped",
                                       "the service stopped before the run finished (after its "
                                       "last committed batch)")
            log.warning("run %s stopped after its last batch", tick.tick_id,
                        extra={"action": "run_stopped"})
            return result
        if result.timed_out:
            await self._report_failure(tick, started_at, clock, result, "timeout",
                                       f"timeout after {self.config.timeout_seconds:g}s")
            return result
        if result.error is not None:
            await self._report_failure(tick, started_at, clock, result, "error", result.error)
            log.error("run %s failed: %s", tick.tick_id, result.error,
                      extra={"action": "run_failed"})
            return result
        completed_at = utcnow()
        await self.publisher.publish_one(JobCompleted(
            **self._envelope(tick, "completed"), started_at=started_at, completed_at=completed_at,
            duration_seconds=time.monotonic() - clock, counts=result.counts,
            partitions=result.partitions, partitions_total=result.partitions_total,
            backlog=result.backlog, cap=self.cap(tick),
        ))
        self.runs_done += 1
        log.info("run %s completed: %d processed, %d failed", tick.tick_id,
                 result.counts.leads_processed, result.counts.leads_failed,
                 extra={"action": "run_completed"})
        return result

    async def shutdown(self, grace: float) -> None:
        """Stop taking ticks; let the run in progress end after its batch in hand, or abandon it
        (uncommitted) after ``grace`` seconds; return once its outcome is published."""
        self._stopping = True
        current = self._current
        if current is not None:
            ctx, work = current
            ctx.stop.set()
            _, pending = await asyncio.wait({work}, timeout=grace)
            if pending:
                log.warning("run %s did not stop within %gs; abandoning its batch", ctx.run_id,
                            grace, extra={"action": "run_abandoned"})
                work.cancel()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=max(grace, 5.0))
        except TimeoutError:
            log.warning("the outcome of the run in progress was not reported before shutdown",
                        extra={"action": "run_unreported"})

    async def _report_failure(self, tick: TickEmitted, started_at: datetime, clock: float,
                              result: RunResult, reason: str, error: str) -> None:
        await self.publisher.publish_one(JobFailed(
            **self._envelope(tick, "failed"), started_at=started_at, completed_at=utcnow(),
            duration_seconds=time.monotonic() - clock, counts=result.counts, reason=reason,
            error=error, partitions=result.partitions, partitions_total=result.partitions_total,
            backlog=result.backlog, cap=self.cap(tick),
            # A stop or a timeout cuts every tenant's work short; only an executor's own error
            # can say whose work it was.
            failed_tenants=result.failed_tenants if reason == "error" else (),
        ))
        self.runs_done += 1
