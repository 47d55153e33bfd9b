"""Scheduler status: the old cron system's JSON shape, from config, time and job state."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from events import JobName
from services.clock.status import scheduled_time, scheduler_status
from services.pipeline.config import LeadflowConfig
from services.runtime.config import JobConfig

NOW = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
FIELDS = {"enabled", "schedule", "timezone", "scheduled_time", "next_run", "hours_until_next_run",
          "health", "success_rate", "last_run", "last_tick", "consecutive_failures", "paused",
          "paused_reason"}


def test_defaults_give_the_nightly_jobs_with_their_next_runs() -> None:
    status = scheduler_status(LeadflowConfig(), now=NOW, jobs_state={})
    assert status["timestamp"] == NOW.isoformat()
    assert status["overall_health"] == "healthy"
    assert set(status["jobs"]) == {j.value for j in JobName}
    harvest = status["jobs"]["harvest"]
    assert set(harvest) == FIELDS
    assert harvest == {
        "enabled": True, "schedule": "0 2 * * *", "timezone": "UTC", "scheduled_time": "02:00",
        "next_run": "2024-01-16T02:00:00+00:00", "hours_until_next_run": 15.5,
        "health": "healthy", "success_rate": 100.0, "last_run": None, "last_tick": None,
        "consecutive_failures": 0, "paused": False, "paused_reason": None,
    }
    assert status["jobs"]["contact"]["scheduled_time"] == "06:00"
    assert status["jobs"]["retention"]["scheduled_time"] == "01:30"


def test_job_state_is_reported_and_the_worst_enabled_health_wins() -> None:
    last = datetime(2024, 1, 15, 2, 0, tzinfo=UTC)
    state = {
        "harvest": {"health": "degraded", "success_rate": 75.0, "consecutive_failures": 1,
                    "last_run": last, "last_tick": last, "paused": False},
        "score": {"health": "failed", "consecutive_failures": 3, "paused": True,
                  "paused_reason": "failures"},
    }
    status = scheduler_status(LeadflowConfig(), now=NOW, jobs_state=state)
    harvest, score = status["jobs"]["harvest"], status["jobs"]["score"]
    assert (harvest["health"], harvest["success_rate"], harvest["last_run"], harvest["last_tick"]) \
        == ("degraded", 75.0, last.isoformat(), last.isoformat())
    assert (score["paused"], score["paused_reason"], score["next_run"]) == (True, "failures", None)
    assert status["overall_health"] == "failed"


def test_a_disabled_job_has_no_next_run_and_does_not_count_towards_health() -> None:
    config = LeadflowConfig(jobs={JobName.SCORE: JobConfig(schedule="0 3 * * *", enabled=False)})
    status = scheduler_status(config, now=NOW, jobs_state={"score": {"health": "failed"}})
    assert status["jobs"]["score"]["enabled"] is False
    assert status["jobs"]["score"]["next_run"] is None
    assert status["jobs"]["score"]["hours_until_next_run"] is None
    assert status["overall_health"] == "healthy"


def test_next_run_follows_the_timezone_and_dst() -> None:
    config = LeadflowConfig(jobs={JobName.HARVEST: JobConfig(schedule="30 2 * * *",
                                                             timezone="Europe/Berlin")})
    now = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    job = scheduler_status(config, now=now, jobs_state={})["jobs"]["harvest"]
    assert job["next_run"] == "2026-03-29T01:00:00+00:00"  # 02:30 does not exist: at the jump
    assert job["hours_until_next_run"] == 13.0


@pytest.mark.parametrize(("schedule", "expected"), [
    ("0 2 * * *", "02:00"), ("5 14 * * *", "14:05"), ("0 2 * * 1-5", "0 2 * * 1-5"),
    ("*/5 * * * *", "*/5 * * * *"), ("every 5m", "every 5m"), ("0 1,13 * * *", "0 1,13 * * *"),
])
def test_scheduled_time(schedule: str, expected: str) -> None:
    assert scheduled_time(JobConfig(schedule=schedule)) == expected


def test_every_schedules_report_hours_until_the_next_interval() -> None:
    config = LeadflowConfig(jobs={JobName.SCORE: JobConfig(schedule="every 15m")})
    job = scheduler_status(config, now=NOW, jobs_state={})["jobs"]["score"]
    assert (job["next_run"], job["hours_until_next_run"]) == ("2024-01-15T10:45:00+00:00", 0.25)
