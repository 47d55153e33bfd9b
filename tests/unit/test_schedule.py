"""Schedules as pure functions of time: next runs, DST edges, month ends, catch-up, jitter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise
from zoneinfo import ZoneInfo

import pytest

from events import JobName, TickSource
from events.ids import tick_id
from services.clock.schedule import (
    Schedule,
    between,
    due_ticks,
    jitter,
    next_emit_at,
    next_run,
    occurrences,
    plan_ticks,
    schedules_for,
)
from services.pipeline.config import LeadflowConfig
from services.runtime.config import Catchup, JobConfig, ScopedSchedule
from services.runtime.cron import shortest_gap


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def sched(expression: str, timezone: str = "UTC", **fields: object) -> Schedule:
    return Schedule(job=JobName.SCORE, expression=expression, timezone=timezone, **fields)  # type: ignore[arg-type]


# --- next_run ------------------------------------------------------------------------------

NEXT_RUN = [
    # (expression, timezone, now, expected next run in UTC)
    ("0 2 * * *", "UTC", utc(2026, 1, 1, 1, 0), utc(2026, 1, 1, 2, 0)),
    ("0 2 * * *", "UTC", utc(2026, 1, 1, 2, 0), utc(2026, 1, 2, 2, 0)),  # strictly after now
    ("0 2 * * *", "UTC", utc(2026, 1, 1, 1, 59, 59, 999999), utc(2026, 1, 1, 2, 0)),
    ("0 0 * * *", "Europe/Berlin", utc(2026, 1, 10, 12), utc(2026, 1, 10, 23)),  # CET = UTC+1
    ("0 0 * * *", "Europe/Berlin", utc(2026, 7, 10, 12), utc(2026, 7, 10, 22)),  # CEST = UTC+2
    # Spring forward in Berlin (2026-03-29 02:00 -> 03:00): 02:30 fires at the jump, 01:00Z.
    ("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), utc(2026, 3, 29, 1, 0)),
    ("30 2 * * *", "Europe/Berlin", utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)),
    # Fall back in Berlin (2026-10-25 03:00 -> 02:00): 02:30 fires once, at its first pass.
    ("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12), utc(2026, 10, 25, 0, 30)),
    ("30 2 * * *", "Europe/Berlin", utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)),
    # New York: spring forward 2026-03-08 02:00 -> 03:00, fall back 2026-11-01 02:00 -> 01:00.
    ("30 2 * * *", "America/New_York", utc(2026, 3, 7, 12), utc(2026, 3, 8, 7, 0)),
    ("30 1 * * *", "America/New_York", utc(2026, 10, 31, 12), utc(2026, 11, 1, 5, 30)),
    ("30 1 * * *", "America/New_York", utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)),
    # Month ends and leap days.
    ("0 0 31 * *", "UTC", utc(2026, 4, 1), utc(2026, 5, 31)),  # April has no 31st
    ("0 0 L * *", "UTC", utc(2026, 2, 1), utc(2026, 2, 28)),
    ("0 0 L * *", "UTC", utc(2028, 2, 1), utc(2028, 2, 29)),
    ("0 12 29 2 *", "UTC", utc(2026, 3, 1), utc(2028, 2, 29, 12)),
    ("0 12 29 2 *", "UTC", utc(2028, 2, 29, 12), utc(2032, 2, 29, 12)),
    ("0 6 1 * *", "Europe/Berlin", utc(2026, 12, 31, 12), utc(2027, 1, 1, 5)),  # year end
    # every <duration>: counted from the epoch in UTC, whatever the timezone.
    ("every 15m", "UTC", utc(2026, 1, 1, 10, 7), utc(2026, 1, 1, 10, 15)),
    ("every 15m", "UTC", utc(2026, 1, 1, 10, 15), utc(2026, 1, 1, 10, 30)),
    ("every 1d", "Europe/Berlin", utc(2026, 3, 29, 0, 30), utc(2026, 3, 30)),
    ("every 1s", "UTC", utc(2026, 1, 1, 0, 0, 0, 500000), utc(2026, 1, 1, 0, 0, 1)),
    ("every 7s", "UTC", utc(1970, 1, 1, 0, 0, 13), utc(1970, 1, 1, 0, 0, 14)),
]


@pytest.mark.parametrize(("expression", "timezone", "now", "expected"), NEXT_RUN)
def test_next_run(expression: str, timezone: str, now: datetime, expected: datetime) -> None:
    assert next_run(sched(expression, timezone), now) == expected


def test_next_run_of_an_expression_that_never_matches_is_none() -> None:
    assert next_run(sched("0 0 30 2 *"), utc(2026, 1, 1)) is None


# --- DST days: once, not zero times or twice ------------------------------------------------

DST_DAYS = [
    # (expression, timezone, local day, ticks that day)
    ("30 2 * * *", "Europe/Berlin", (2026, 3, 29), 1),  # spring forward: 02:30 does not exist
    ("30 2 * * *", "Europe/Berlin", (2026, 10, 25), 1),  # fall back: 02:30 happens twice
    ("30 2 * * *", "America/New_York", (2026, 3, 8), 1),
    ("30 1 * * *", "America/New_York", (2026, 11, 1), 1),
    ("0 2 * * *", "Europe/Berlin", (2026, 3, 29), 1),  # exactly at the jump
    ("0 * * * *", "Europe/Berlin", (2026, 3, 29), 23),  # a 23-hour day
    ("0 * * * *", "Europe/Berlin", (2026, 10, 25), 24),  # 25 real hours, 02:00 fires once
    ("*/15 2 * * *", "Europe/Berlin", (2026, 3, 29), 1),  # four skipped times: one tick
    ("*/15 2 * * *", "Europe/Berlin", (2026, 10, 25), 4),
    ("30 2 * * *", "Europe/Berlin", (2026, 3, 30), 1),  # an ordinary day
]


@pytest.mark.parametrize(("expression", "timezone", "day", "count"), DST_DAYS)
def test_dst_days(expression: str, timezone: str, day: tuple[int, int, int], count: int) -> None:
    zone = ZoneInfo(timezone)
    start = datetime(*day, tzinfo=zone)
    end = start.replace(day=start.day + 1)
    ticks = list(between(sched(expression, timezone), start.astimezone(UTC), end.astimezone(UTC)))
    assert len(ticks) == count
    assert all(a < b for a, b in pairwise(ticks))


@pytest.mark.parametrize("timezone", ["Europe/Berlin", "America/New_York", "Australia/Sydney",
                                      "Asia/Kolkata", "UTC"])
@pytest.mark.parametrize("expression", ["30 2 * * *", "0 * * * *", "*/20 1-3 * * *"])
def test_a_year_of_ticks_is_strictly_increasing(expression: str, timezone: str) -> None:
    ticks = list(between(sched(expression, timezone), utc(2026, 1, 1), utc(2027, 1, 1)))
    assert all(a < b for a, b in pairwise(ticks))
    assert all(t.tzinfo is UTC for t in ticks)
    if expression == "30 2 * * *":
        assert len(ticks) == 365  # every day exactly once, DST or not


def test_occurrences_resume_correctly_from_inside_a_repeated_hour() -> None:
    # 01:40Z is 02:40 CET, the second pass of the repeated hour: 02:45's one tick is behind us.
    schedule = sched("45 2 * * *", "Europe/Berlin")
    assert next_run(schedule, utc(2026, 10, 25, 1, 40)) == utc(2026, 10, 26, 1, 45)


# --- due ticks and catch-up -------------------------------------------------------------------

S, C = TickSource.SCHEDULE, TickSource.CATCHUP
HOURLY = "0 * * * *"

DUE = [
    # (expression, fields, last_emitted, now, expected [(scheduled_for, source)])
    (HOURLY, {}, utc(2026, 1, 1, 1), utc(2026, 1, 1, 1, 59, 59), []),
    (HOURLY, {}, utc(2026, 1, 1, 1), utc(2026, 1, 1, 2, 0, 0, 1000), [(utc(2026, 1, 1, 2), S)]),
    (HOURLY, {}, utc(2026, 1, 1, 1), utc(2026, 1, 1, 2, 0, 59), [(utc(2026, 1, 1, 2), S)]),
    (HOURLY, {}, utc(2026, 1, 1, 2), utc(2026, 1, 1, 2, 30), []),  # already emitted
    (HOURLY, {}, None, utc(2026, 1, 1, 2, 30), []),  # first start: nothing is missed
    # Downtime across 02:00 and 03:00, back at 03:30.
    (HOURLY, {"catchup": Catchup.ALL}, utc(2026, 1, 1, 1, 30), utc(2026, 1, 1, 3, 30),
     [(utc(2026, 1, 1, 2), C), (utc(2026, 1, 1, 3), C)]),
    (HOURLY, {"catchup": Catchup.LATEST}, utc(2026, 1, 1, 1, 30), utc(2026, 1, 1, 3, 30),
     [(utc(2026, 1, 1, 3), C)]),
    (HOURLY, {"catchup": Catchup.NONE}, utc(2026, 1, 1, 1, 30), utc(2026, 1, 1, 3, 30), []),
    # Back just after 03:00: 02:00 was missed, 03:00 is on time.
    (HOURLY, {"catchup": Catchup.ALL}, utc(2026, 1, 1, 1, 30), utc(2026, 1, 1, 3, 0, 30),
     [(utc(2026, 1, 1, 2), C), (utc(2026, 1, 1, 3), S)]),
    (HOURLY, {"catchup": Catchup.NONE}, utc(2026, 1, 1, 1, 30), utc(2026, 1, 1, 3, 0, 30),
     [(utc(2026, 1, 1, 3), S)]),
    # The catch-up window bounds how far back missed ticks are emitted.
    (HOURLY, {"catchup": Catchup.ALL, "catchup_window": timedelta(minutes=90)},
     utc(2026, 1, 1, 0, 30), utc(2026, 1, 1, 3, 30),
     [(utc(2026, 1, 1, 2), C), (utc(2026, 1, 1, 3), C)]),
    (HOURLY, {"catchup": Catchup.LATEST, "catchup_window": timedelta(minutes=20)},
     utc(2026, 1, 1, 0, 30), utc(2026, 1, 1, 3, 30), []),
    # A week down with a daily job and the default one-day window: only yesterday's tick.
    ("0 2 * * *", {"catchup": Catchup.ALL}, utc(2026, 1, 1, 3), utc(2026, 1, 8, 12),
     [(utc(2026, 1, 8, 2), C)]),
    # max_catchup_ticks keeps the most recent missed ticks.
    ("every 1m", {"catchup": Catchup.ALL, "max_catchup_ticks": 2}, utc(2026, 1, 1, 0, 0),
     utc(2026, 1, 1, 0, 10, 30),
     [(utc(2026, 1, 1, 0, 8), C), (utc(2026, 1, 1, 0, 9), C), (utc(2026, 1, 1, 0, 10), S)]),
    # A grace of zero: a tick not emitted at its time is missed.
    (HOURLY, {"catchup": Catchup.NONE, "grace": timedelta(0)}, utc(2026, 1, 1, 1),
     utc(2026, 1, 1, 2, 0, 1), []),
    # DST: the Berlin 02:30 job on spring-forward day is due at the jump (01:00Z).
    ("30 2 * * *", {}, utc(2026, 3, 28, 12), utc(2026, 3, 29, 1, 0, 0, 5000),
     [(utc(2026, 3, 29, 1), S)]),
]


@pytest.mark.parametrize(("expression", "fields", "last", "now", "expected"), DUE)
def test_due_ticks(expression: str, fields: dict[str, object], last: datetime | None,
                   now: datetime, expected: list[tuple[datetime, TickSource]]) -> None:
    timezone = "Europe/Berlin" if expression == "30 2 * * *" else "UTC"
    schedule = sched(expression, timezone, **fields)
    ticks = due_ticks(schedule, last, now)
    assert [(t.scheduled_for, t.source) for t in ticks] == expected
    assert all(t.tick_id == tick_id("score", "*/*", t.scheduled_for) for t in ticks)


def test_plan_moves_the_cursor_past_ticks_the_policy_passes_over() -> None:
    schedule = sched(HOURLY, catchup=Catchup.NONE)
    plan = plan_ticks(schedule, utc(2026, 1, 1, 1, 30), utc(2026, 1, 1, 3, 30))
    assert (plan.ticks, plan.passed_over, plan.cursor) == ([], 2, utc(2026, 1, 1, 3))
    # Asking again at the same time emits nothing more: a restart neither repeats nor skips.
    assert plan_ticks(schedule, plan.cursor, utc(2026, 1, 1, 3, 30)).ticks == []


def test_first_start_records_a_baseline_and_nothing_changes_without_due_ticks() -> None:
    schedule = sched(HOURLY)
    assert plan_ticks(schedule, None, utc(2026, 1, 1, 2, 30)).cursor == utc(2026, 1, 1, 2, 30)
    assert plan_ticks(schedule, utc(2026, 1, 1, 2), utc(2026, 1, 1, 2, 30)).cursor is None


def test_a_first_start_emits_nothing_for_the_past_whatever_the_jitter() -> None:
    # jitter (240 s) above grace (60 s): 00:10's emit time can lie more than grace before a first
    # start at 00:13:50; it predates the clock, so it is neither caught up nor passed over.
    schedule = Schedule(JobName.SCORE, "every 10m", "UTC", jitter_seconds=240,
                        grace=timedelta(seconds=60), catchup=Catchup.ALL)
    plan = plan_ticks(schedule, None, utc(2026, 1, 1, 0, 13, 50))
    assert [t.source for t in plan.ticks if t.source is TickSource.CATCHUP] == []
    assert plan.passed_over == 0
    for step in range(0, 4 * 3600, 7):  # any first-start moment, any jitter below the gap
        now = utc(2026, 1, 1) + timedelta(seconds=step)
        for jitter_s in (0, 30, 59, 61, 240, 599):
            first = Schedule(JobName.SCORE, "every 10m", jitter_seconds=jitter_s,
                             catchup=Catchup.ALL, grace=timedelta(seconds=60))
            plan = plan_ticks(first, None, now)
            assert all(t.source is TickSource.SCHEDULE for t in plan.ticks), (now, jitter_s)
            assert all(now - t.emit_at <= first.grace for t in plan.ticks), (now, jitter_s)
            assert plan.passed_over == 0


PASSED_OVER = [
    # (expression, catchup, last handled, now, caught up, passed over)
    # daily 02:00, down Jan 1 03:00 -> Jan 8 12:00, one-day window: Jan 8 caught up, 2..7 not
    ("0 2 * * *", Catchup.ALL, utc(2026, 1, 1, 3), utc(2026, 1, 8, 12), 1, 6),
    ("0 2 * * *", Catchup.NONE, utc(2026, 1, 1, 3), utc(2026, 1, 8, 12), 0, 7),
    ("0 2 * * *", Catchup.LATEST, utc(2026, 1, 1, 3), utc(2026, 1, 8, 12), 1, 6),
    # every 1m, down 3 days: 4,319 missed (latest: the last caught up), Jan 4 00:00 on time
    ("every 1m", Catchup.LATEST, utc(2026, 1, 1), utc(2026, 1, 4, 0, 0, 30), 1, 4318),
    ("every 1m", Catchup.NONE, utc(2026, 1, 1), utc(2026, 1, 4, 0, 0, 30), 0, 4319),
    ("*/5 * * * *", Catchup.NONE, utc(2026, 1, 1), utc(2026, 1, 3, 0, 2), 0, 576),
]


@pytest.mark.parametrize(("expression", "catchup", "last", "now", "caught_up", "passed"),
                         PASSED_OVER)
def test_passed_over_counts_every_missed_tick_even_before_the_window(
        expression: str, catchup: Catchup, last: datetime, now: datetime, caught_up: int,
        passed: int) -> None:
    plan = plan_ticks(sched(expression, catchup=catchup), last, now)
    assert [t.source for t in plan.ticks].count(TickSource.CATCHUP) == caught_up
    assert plan.passed_over == passed
    # every occurrence after ``last`` up to now is either emitted or passed over, once
    assert len(plan.ticks) + plan.passed_over == sum(1 for _ in between(sched(expression), last
                                                                       + timedelta(microseconds=1), now))


def test_ticks_passed_over_before_the_window_are_counted_once() -> None:
    schedule = sched("0 2 * * *", catchup=Catchup.ALL, catchup_window=timedelta(hours=1))
    plan = plan_ticks(schedule, utc(2026, 1, 1, 3), utc(2026, 1, 8, 12))
    assert (plan.ticks, plan.passed_over) == ([], 7)
    assert plan.cursor is not None and plan.cursor >= utc(2026, 1, 8, 2)
    assert plan_ticks(schedule, plan.cursor, utc(2026, 1, 8, 12)).passed_over == 0


def test_stepping_second_by_second_emits_every_tick_once() -> None:
    schedule = sched("every 5s", jitter_seconds=2)
    cursor, seen = utc(2026, 1, 1), []
    now = cursor
    while now < utc(2026, 1, 1, 0, 1):
        now += timedelta(milliseconds=250)
        plan = plan_ticks(schedule, cursor, now)
        seen += [t.scheduled_for for t in plan.ticks]
        cursor = plan.cursor or cursor
    assert seen == [utc(2026, 1, 1) + timedelta(seconds=5 * k) for k in range(1, 12)]


def test_next_emit_at_is_the_next_tick_after_the_cursor() -> None:
    schedule = sched(HOURLY)
    assert next_emit_at(schedule, utc(2026, 1, 1, 1), utc(2026, 1, 1, 1, 10)) == utc(2026, 1, 1, 2)
    # A cursor left behind (downtime): the missed tick is due already.
    assert next_emit_at(schedule, utc(2026, 1, 1, 1), utc(2026, 1, 1, 5)) == utc(2026, 1, 1, 2)


# --- jitter --------------------------------------------------------------------------------

JITTER = [
    # (expression, timezone, jitter_seconds)
    ("every 1s", "UTC", 0.9),
    ("every 10s", "UTC", 9.999),
    ("every 1m", "UTC", 30),
    ("0 2 * * *", "Europe/Berlin", 3000),
    ("0 1,3 * * *", "Europe/Berlin", 7199),  # 1 h apart on spring-forward day
    ("*/5 * * * *", "America/New_York", 299),
]


@pytest.mark.parametrize(("expression", "timezone", "seconds"), JITTER)
def test_jitter_is_deterministic_and_never_reaches_the_next_tick(
        expression: str, timezone: str, seconds: float) -> None:
    schedule = sched(expression, timezone, jitter_seconds=seconds)
    instants = list(islice(occurrences(schedule, utc(2026, 3, 28)), 300))
    delays = [jitter(schedule, i) for i in instants]
    assert delays == [jitter(schedule, i) for i in instants]  # same tick, same delay
    for (instant, following), delay in zip(pairwise(instants), delays, strict=False):
        assert timedelta(0) <= delay <= timedelta(seconds=seconds)
        assert instant + delay < following
    assert len(set(delays)) > len(delays) // 2  # it does spread ticks out


def test_no_jitter_by_default() -> None:
    assert jitter(sched(HOURLY), utc(2026, 1, 1, 2)) == timedelta(0)


def test_shortest_gap() -> None:
    assert shortest_gap("every 90s") == timedelta(seconds=90)
    assert shortest_gap("0 1,3 * * *", "UTC") == timedelta(hours=2)
    assert shortest_gap("0 1,3 * * *", "Europe/Berlin") == timedelta(hours=1)  # spring forward


# --- from config -----------------------------------------------------------------------------


def test_defaults_reproduce_the_nightly_schedule() -> None:
    schedules = {s.job: s for s in schedules_for(LeadflowConfig())}
    day = utc(2026, 6, 1)
    runs = {job.value: next_run(schedules[job], day) for job in JobName}
    assert runs == {"retention": utc(2026, 6, 1, 1, 30), "harvest": utc(2026, 6, 1, 2),
                    "score": utc(2026, 6, 1, 3), "qualify": utc(2026, 6, 1, 4),
                    "route": utc(2026, 6, 1, 5), "contact": utc(2026, 6, 1, 6)}
    config = LeadflowConfig()
    assert {j.value: config.job(j).max_leads_per_run for j in JobName if j.value != "retention"} == {
        "harvest": 100, "score": 100, "qualify": 100, "route": 100, "contact": 50}


def test_scopes_get_schedules_of_their_own() -> None:
    config = LeadflowConfig(jobs={JobName.CONTACT: JobConfig(scopes=(
        ScopedSchedule(tenant="acme", campaign="q4", schedule="0 9 * * 1-5",
                       timezone="America/New_York", max_leads_per_run=20),
        ScopedSchedule(tenant="off", enabled=False)))})
    contact = [s for s in schedules_for(config) if s.job is JobName.CONTACT]
    assert [(s.scope, s.max_leads) for s in contact] == [("*/*", None), ("acme/q4", 20), ("off/*", None)]
    assert next_run(contact[1], utc(2026, 11, 20, 15)) == utc(2026, 11, 23, 14)  # Monday 09:00 EST
