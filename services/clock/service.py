"""The clock service: turns schedules into ticks on clock.ticks, so time is data in the log.

Only the holder of the clock's advisory lock emits. Each emission publishes first (acks=all)
and then records the ticks and the schedule's cursor; on taking over, a clock first reads
clock.ticks to its end, so a tick published just before a crash is known and never repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import asyncpg

from events import LeadflowError, TickEmitted, utcnow
from services.runtime.bus import Publisher, make_broker
from services.runtime.db import create_pool
from services.runtime.settings import Settings

from ..runtime.locks import AdvisoryLock
from . import reaper, store
from .errors import LostLeadership
from .follower import LogFollower
from .leader import lock_key
from .retries import retry_tick
from .schedule import Schedule, describe, next_emit_at, plan_ticks, schedules_for
from .ticks import scheduled_tick

log = logging.getLogger(__name__)

#: Longest sleep of the active loop: new retries and pauses are noticed at least this often.
MAX_SLEEP = 1.0
#: How often the active clock looks for runs whose instance died (reaper.py).
REAP_EVERY = 10.0


class Clock:
    """One clock process: standby until it holds the lock, then the emitter."""

    def __init__(self, settings: Settings, *, now: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.config = settings.pipeline
        self.schedules: list[Schedule] = schedules_for(self.config)
        self.now = now
        self.identity = f"clock:{settings.instance_id}"
        self.broker = make_broker(settings.kafka_bootstrap_servers, client_id="leadflow-clock")
        self.publisher = Publisher(self.broker, settings.pipeline.topics)
        self.lock = AdvisoryLock(settings.database_url, lock_key(settings.prefix))
        self.cursors: dict[store.Key, datetime] = {}
        self._pool: asyncpg.Pool | None = None
        self._follower: LogFollower | None = None
        self._follow_task: asyncio.Task[None] | None = None
        self._published_retries: set[uuid.UUID] = set()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._reaped_at = float("-inf")
        self.lost_after = reaper.LOST_AFTER

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "Clock.start() was not called"
        return self._pool

    @property
    def active(self) -> bool:
        return self._follower is not None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._pool = await create_pool(self.settings.database_url, max_size=4)
        await self.broker.start()

    async def stop(self) -> None:
        await self.deactivate()
        await self.broker.stop()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def activate(self) -> bool:
        """Become the active clock if no other holds the lock; False: stand by."""
        if not await self.lock.try_acquire():
            return False
        follower = LogFollower(self.settings.kafka_bootstrap_servers, self.settings.prefix,
                               self.config, self.pool, on_change=self._wake.set)
        try:
            await follower.start()
            await follower.catch_up_ticks()
            self.cursors = await store.load_cursors(self.pool)
        except BaseException:
            await follower.stop()
            await self.lock.release()
            raise
        self._follower = follower
        self._follow_task = asyncio.create_task(follower.run(), name="clock-follower")
        log.info("clock %s is active (%d schedules)", self.identity, len(self.schedules),
                 extra={"action": "clock_active"})
        return True

    async def deactivate(self) -> None:
        """Stop emitting and let a standby take over."""
        if self._follow_task is not None:
            self._follow_task.cancel()
            await asyncio.gather(self._follow_task, return_exceptions=True)
            self._follow_task = None
        if self._follower is not None:
            await self._follower.stop()
            self._follower = None
        await self.lock.release()

    def request_stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    # --- one step ---------------------------------------------------------------------------

    async def step(self, now: datetime) -> list[TickEmitted]:
        """Emit every tick due at ``now`` (schedules, catch-up, retries); returns them in order."""
        if not await self.lock.still_held():
            raise LostLeadership("the clock's advisory lock is gone; standing by")
        paused = await store.paused_jobs(self.pool)
        emitted: list[TickEmitted] = []
        for schedule in self.schedules:
            emitted.extend(await self._step_schedule(schedule, now, paused))
        emitted.extend(await self._emit_retries(now, paused))
        await self._report_lost_parts(now)
        return emitted

    async def _report_lost_parts(self, now: datetime) -> None:
        """Every ten seconds: report parts of runs whose instance died mid-run, and the
        partitions of runs nobody ran (reaper.py)."""
        if time.monotonic() - self._reaped_at < REAP_EVERY:
            return
        self._reaped_at = time.monotonic()
        lost = await reaper.lost_parts(self.pool, self.lost_after)
        await self.publisher.publish([reaper.lost_part_failed(part, now) for part in lost])
        for part in lost:
            log.warning("run %s of %s: instance %s stopped reporting mid-run; reported failed "
                        "(lost)", part.run.run_id, part.run.job, part.part.part,
                        extra={"action": "run_lost"})
        uncovered = await reaper.uncovered_runs(self.pool, self.lost_after)
        await self.publisher.publish([reaper.uncovered_failed(run, now) for run in uncovered])
        for run in uncovered:
            log.warning("run %s of %s: partitions %s were not run by any instance (their owner "
                        "stopped after the tick); reported failed (lost)", run.run.run_id,
                        run.run.job, ", ".join(map(str, run.missing)),
                        extra={"action": "run_lost"})

    async def _step_schedule(self, schedule: Schedule, now: datetime,
                             paused: set[str]) -> list[TickEmitted]:
        plan = plan_ticks(schedule, self.cursors.get(schedule.key), now)
        if plan.cursor is None:
            return []
        withheld = schedule.job.value in paused
        ticks = [] if withheld else [
            scheduled_tick(schedule, due, recorded_at=utcnow(), requested_by=self.identity)
            for due in plan.ticks]
        await self.publisher.publish(ticks)
        # Moved on in memory first: if recording fails, this clock must not publish them again
        # (the follower records them from the log, and a successor reads the log on takeover).
        self.cursors[schedule.key] = plan.cursor
        await store.record_emitted(self.pool, schedule.key, plan.cursor, ticks)
        for tick in ticks:
            log.info("tick %s: %s %s for %s", tick.tick_id, tick.job.value, tick.source.value,
                     tick.scheduled_for.isoformat(), extra={"action": "tick_emitted"})
        if withheld and plan.ticks:
            log.warning("%d tick(s) of %s withheld: the job is paused (leadflow clock resume %s)",
                        len(plan.ticks), schedule.job.value, schedule.job.value,
                        extra={"action": "tick_withheld"})
        if plan.passed_over:
            log.warning("%d missed tick(s) of %s passed over (catchup=%s, window %s)",
                        plan.passed_over, describe(schedule), schedule.catchup.value,
                        schedule.catchup_window, extra={"action": "ticks_passed_over"})
        return ticks

    async def _emit_retries(self, now: datetime, paused: set[str]) -> list[TickEmitted]:
        emitted: list[TickEmitted] = []
        for row in await store.due_retries(self.pool, now):
            if row.job in paused:
                await store.settle_retry(self.pool, row, "cancelled", "job paused")
                continue
            tick = retry_tick(row, recorded_at=utcnow(), requested_by=self.identity)
            if tick.tick_id not in self._published_retries:  # published, not yet settled
                await self.publisher.publish_one(tick)
                self._published_retries.add(tick.tick_id)
            async with self.pool.acquire() as conn, conn.transaction():
                await store.record_ticks(conn, [tick])
                await store.settle_retry(conn, row, "emitted")
            self._published_retries.discard(tick.tick_id)
            log.info("tick %s: retry %d of run %s (%s)", tick.tick_id, row.attempt, row.retry_of,
                     row.job, extra={"action": "retry_emitted"})
            emitted.append(tick)
        return emitted

    async def next_wake(self, now: datetime) -> datetime:
        """When something is next due: a schedule's next tick or a pending retry."""
        candidates = [at for s in self.schedules
                      if (at := next_emit_at(s, self.cursors.get(s.key), now)) is not None]
        retry = await store.next_retry_due(self.pool)
        if retry is not None:
            candidates.append(retry)
        return min(candidates, default=now + timedelta(seconds=MAX_SLEEP))

    # --- the loop ---------------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        if self._stopping.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(seconds, 0))

    async def _active_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.step(self.now())
                wake = await self.next_wake(self.now())
            except LostLeadership as exc:
                log.warning("%s", exc, extra={"action": "leadership_lost"})
                return
            except Exception:  # the broker or database hiccuped: try again soon
                log.exception("clock step failed; retrying in 1s", extra={"action": "step_failed"})
                await self._sleep(MAX_SLEEP)
                continue
            # A millisecond past the due time, so the wall clock has surely reached it.
            delay = (wake - self.now()).total_seconds() + 0.001
            await self._sleep(min(delay, MAX_SLEEP))

    async def run(self) -> None:
        """Stand by until this clock holds the lock, emit while it does, until asked to stop."""
        await self.start()
        standby_poll = self.config.clock.standby_poll.total_seconds()
        announced = False
        try:
            while not self._stopping.is_set():
                try:
                    activated = await self.activate()
                except LeadflowError as exc:  # e.g. the database or the broker is not up yet
                    log.warning("could not become active (%s); retrying", exc,
                                extra={"action": "activate_failed"})
                    await self._sleep(MAX_SLEEP)
                    continue
                except Exception:
                    log.exception("could not become active; retrying",
                                  extra={"action": "activate_failed"})
                    await self._sleep(MAX_SLEEP)
                    continue
                if not activated:
                    if not announced:
                        log.info("another clock is active; standing by", extra={"action": "standby"})
                        announced = True
                    await self._sleep(standby_poll)
                    continue
                announced = False
                try:
                    await self._active_loop()
                finally:
                    await self.deactivate()
        finally:
            await self.stop()


async def run_clock(settings: Settings) -> None:
    """`leadflow run clock`: run until SIGINT or SIGTERM."""
    clock = Clock(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, clock.request_stop)
    await clock.run()
