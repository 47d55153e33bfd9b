"""Backfill planning: which instants, which refusals, which get ticked again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from events import JobName, TickSource
from events.ids import tick_id
from services.clock.backfill import (
    Reprocess,
    backfill_instants,
    parse_time,
    plan_backfill,
    wanted,
)
from services.clock.errors import BackfillRefused
from services.clock.schedule import Schedule

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAILY = Schedule(job=JobName.SCORE, expression="0 3 * * *", timezone="Europe/Berlin")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-01", utc(2026, 10, 31, 23)),  # midnight in the job's timezone
    ("2026-11-01T02:00", utc(2026, 11, 1, 1)),
    ("2026-11-01 02:00+00:00", utc(2026, 11, 1, 2)),
    ("2026-11-01T02:00Z", utc(2026, 11, 1, 2)),
    ("now", NOW),
])
def test_parse_time(text: str, expected: datetime) -> None:
    assert parse_time(text, "Europe/Berlin", NOW) == expected


def test_parse_time_says_what_it_accepts() -> None:
    with pytest.raises(BackfillRefused, match="ISO 8601"):
        parse_time("yesterday", "UTC", NOW)


def test_instants_are_the_schedule_in_the_half_open_interval_in_order() -> None:
    instants = backfill_instants(DAILY, parse_time("2026-11-01", "Europe/Berlin", NOW),
                                 parse_time("2026-11-04", "Europe/Berlin", NOW), now=NOW, limit=10)
    assert instants == [utc(2026, 11, 1, 2), utc(2026, 11, 2, 2), utc(2026, 11, 3, 2)]


@pytest.mark.parametrize(("start", "end", "limit", "message"), [
    (utc(2026, 11, 19), utc(2026, 11, 22), 10, "ends in the future"),
    (utc(2026, 11, 1), utc(2026, 11, 20), 5, "more than 5 ticks"),
    (utc(2026, 11, 5), utc(2026, 11, 1), 10, "must be before"),
])
def test_refusals(start: datetime, end: datetime, limit: int, message: str) -> None:
    with pytest.raises(BackfillRefused, match=message):
        backfill_instants(DAILY, start, end, now=NOW, limit=limit)


def test_force_lifts_the_limit_and_the_future_check() -> None:
    instants = backfill_instants(DAILY, utc(2026, 11, 1), utc(2026, 11, 22), now=NOW, limit=5,
                                 force=True)
    assert len(instants) == 21


@pytest.mark.parametrize(("existing", "reprocess", "expected"), [
    ("none", Reprocess.NONE, True), ("failed", Reprocess.NONE, False),
    ("completed", Reprocess.NONE, False), ("none", Reprocess.FAILED, True),
    ("failed", Reprocess.FAILED, True), ("completed", Reprocess.FAILED, False),
    ("none", Reprocess.ALL, True), ("failed", Reprocess.ALL, True),
    ("completed", Reprocess.ALL, True),
])
def test_wanted(existing: str, reprocess: Reprocess, expected: bool) -> None:
    assert wanted(existing, reprocess) is expected


def test_plan_ticks_the_wanted_instants_with_backfill_ids_of_their_own() -> None:
    instants = [utc(2026, 11, 1, 2), utc(2026, 11, 2, 2), utc(2026, 11, 3, 2)]
    existing = {instants[0]: "completed", instants[1]: "failed"}
    request = uuid.uuid4()
    entries = plan_backfill(DAILY, instants, existing, reprocess=Reprocess.FAILED, request=request,
                            recorded_at=NOW, requested_by="cli:test")
    assert [(e.existing, e.tick is not None) for e in entries] == [
        ("completed", False), ("failed", True), ("none", True)]
    ticks = [e.tick for e in entries if e.tick]
    assert all(t.source is TickSource.BACKFILL and t.requested_by == "cli:test" for t in ticks)
    assert [t.scheduled_for for t in ticks] == instants[1:]
    # Not the scheduled tick's id (a backfill is a run of its own), but stable within a request.
    assert all(t.tick_id != tick_id("score", "*/*", t.scheduled_for) for t in ticks)
    again = plan_backfill(DAILY, instants, existing, reprocess=Reprocess.FAILED, request=request,
                          recorded_at=NOW, requested_by="cli:test")
    assert [e.tick.tick_id for e in again if e.tick] == [t.tick_id for t in ticks]
