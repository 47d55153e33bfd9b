"""Scheduler status for the dashboard: the old cron system's JSON shape, computed by the pure
schedule logic from the config, the time and each job's state."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg

from events import ALL_TENANTS, Health, JobName
from services.projector.queries import run_models
from services.runtime.config import JobConfig, PlatformConfig

from . import store
from .schedule import job_schedule, next_run


def scheduled_time(config: JobConfig) -> str:
    """'HH:MM' for a once-a-day cron (minute and hour fixed, every day), else the expression."""
    fields = config.schedule.split()
    if len(fields) == 5 and fields[2:] == ["*", "*", "*"] and all(f.isdigit() for f in fields[:2]):
        return f"{int(fields[1]):02d}:{int(fields[0]):02d}"
    return config.schedule


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def job_status(job: JobName, config: PlatformConfig, now: datetime,
               state: Mapping[str, Any]) -> dict[str, Any]:
    """One job's entry: its schedule, when it runs next, and how it has been doing."""
    jc = config.job(job)
    paused = bool(state.get("paused", False))
    upcoming = None
    if jc.enabled and not paused:
        upcoming = next_run(job_schedule(job, jc, config.clock), now)
    return {
        "enabled": jc.enabled,
        "schedule": jc.schedule,
        "timezone": jc.timezone,
        "scheduled_time": scheduled_time(jc),
        "next_run": _iso(upcoming),
        "hours_until_next_run": round((upcoming - now).total_seconds() / 3600, 2)
        if upcoming else None,
        "health": state.get("health", Health.HEALTHY.value),
        "success_rate": state.get("success_rate", 100.0),
        "last_run": _iso(state.get("last_run")),
        "last_tick": _iso(state.get("last_tick")),
        "consecutive_failures": state.get("consecutive_failures", 0),
        "paused": paused,
        "paused_reason": state.get("paused_reason"),
    }


def scheduler_status(config: PlatformConfig, *, now: datetime,
                     jobs_state: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """{timestamp, overall_health, jobs{...}}: overall health is the worst of the enabled jobs."""
    now = now.astimezone(UTC)
    jobs = {job.value: job_status(job, config, now, jobs_state.get(job.value, {}))
            for job in JobName}
    worst = max((j["health"] for j in jobs.values() if j["enabled"]), key=lambda h: Health(h).severity,
                default=Health.HEALTHY.value)
    return {"timestamp": now.isoformat(), "overall_health": worst, "jobs": jobs}


async def load_jobs_state(conn: asyncpg.Connection | asyncpg.Pool,
                          tenant_id: str = ALL_TENANTS) -> dict[str, dict[str, Any]]:
    """Per job: metrics from the read models (of ``tenant_id``; '*': all tenants), last tick
    and pause from the clock."""
    state: dict[str, dict[str, Any]] = {job.value: {} for job in JobName}
    for m in await run_models.metrics_of_tenant(conn, tenant_id):
        state.setdefault(m.job, {}).update(
            health=m.health_status.value, success_rate=m.success_rate,
            consecutive_failures=m.consecutive_failures, last_run=m.last_run_at)
    for job, last_tick in (await store.last_ticks(conn)).items():
        state.setdefault(job, {})["last_tick"] = last_tick
    for job, (paused, reason) in (await store.pause_states(conn)).items():
        state.setdefault(job, {}).update(paused=paused, paused_reason=reason)
    return state
