"""Retries and auto-pause decisions on a failed run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from events import JobFailed, JobName, RunCounts, RunInfo, TickSource
from services.clock.retries import backoff, retry_for, retry_tick, retry_tick_id, should_pause
from services.runtime.config import JobConfig

AT = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
ENDED = AT + timedelta(minutes=5)


def failed(attempt: int = 0, retry_of: uuid.UUID | None = None) -> JobFailed:
    run = uuid.uuid4()
    return JobFailed(
        event_id=uuid.uuid4(), occurred_at=ENDED, recorded_at=ENDED, tenant_id="*", run_id=run,
        job=JobName.SCORE, part="a",
        run=RunInfo(scheduled_for=AT, source=TickSource.RETRY if attempt else TickSource.SCHEDULE,
                    max_leads=40, retry_of=retry_of, attempt=attempt),
        started_at=AT, completed_at=ENDED, duration_seconds=300, counts=RunCounts(),
        reason="error", error="boom")


@pytest.mark.parametrize(("attempt", "delay"), [(1, 60), (2, 120), (3, 240)])
def test_backoff_doubles(attempt: int, delay: float) -> None:
    assert backoff(JobConfig(retry_backoff_seconds=60), attempt) == timedelta(seconds=delay)


def test_a_failed_first_run_earns_attempt_one_linked_to_it() -> None:
    first = failed()
    row = retry_for(first, JobConfig(retry_backoff_seconds=10), campaign_id="q4")
    assert row is not None
    assert (row.retry_of, row.attempt, row.failed_run) == (first.run_id, 1, first.run_id)
    assert (row.due_at, row.scheduled_for, row.max_leads, row.campaign_id) == (
        ENDED + timedelta(seconds=10), AT, 40, "q4")
    assert row.tick_id == retry_tick_id(first.run_id, 1)  # deterministic


def test_a_failed_retry_earns_the_next_attempt_linked_to_the_first_run() -> None:
    first_id = uuid.uuid4()
    row = retry_for(failed(attempt=2, retry_of=first_id), JobConfig(retry_backoff_seconds=10),
                    campaign_id=None)
    assert row is not None
    assert (row.retry_of, row.attempt, row.due_at) == (first_id, 3, ENDED + timedelta(seconds=40))


@pytest.mark.parametrize(("config", "attempt"), [
    (JobConfig(max_retries=3), 3),  # used up
    (JobConfig(max_retries=0), 0),
    (JobConfig(retry_on_failure=False), 0),
])
def test_no_retry_when_off_or_used_up(config: JobConfig, attempt: int) -> None:
    assert retry_for(failed(attempt=attempt, retry_of=uuid.uuid4() if attempt else None), config,
                     None) is None


def test_the_retry_tick_carries_the_link_and_the_original_interval() -> None:
    first = failed()
    row = retry_for(first, JobConfig(), campaign_id="q4")
    assert row is not None
    tick = retry_tick(row, recorded_at=ENDED, requested_by="clock:test")
    assert (tick.tick_id, tick.source, tick.retry_of, tick.attempt, tick.scheduled_for,
            tick.campaign_id, tick.causation_id) == (
        row.tick_id, TickSource.RETRY, first.run_id, 1, AT, "q4", first.run_id)


@pytest.mark.parametrize(("after", "streak", "paused", "expected"), [
    (0, 10, False, False),  # off by default
    (3, 2, False, False),
    (3, 3, False, True),
    (3, 4, False, True),
    (3, 5, True, False),  # already paused
])
def test_should_pause(after: int, streak: int, paused: bool, expected: bool) -> None:
    assert should_pause(JobConfig(pause_after_failures=after), streak, paused) is expected
