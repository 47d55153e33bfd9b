"""Read-model row types: immutable, built from events or from database rows (``from_row``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, Self
from uuid import UUID

from events import Health, RunStatus


class Row:
    """Mixin: positional tuples in column order, and construction from an asyncpg record."""

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))  # type: ignore[arg-type]

    @classmethod
    def from_row(cls, record: Any) -> Self:
        return cls(**{name: record[name] for name in cls.columns()})

    def astuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.columns())

    def evolve(self, **changes: Any) -> Self:
        return replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True, slots=True)
class PartRow(Row):
    run_id: UUID
    part: str
    job: str
    status: str
    started_at: datetime | None
    completed_at: datetime | None
    leads_processed: int
    leads_succeeded: int
    leads_failed: int
    partitions: list[int]
    partitions_total: int
    backlog: int | None
    reason: str | None
    error: str | None
    skipped_ticks: int = 0


@dataclass(frozen=True, slots=True)
class RunRow(Row):
    run_id: UUID
    job: str
    tenant_id: str
    campaign_id: str | None
    source: str
    scheduled_for: datetime
    requested_by: str | None
    retry_of: UUID | None
    attempt: int
    max_leads: int | None
    status: str
    started_at: datetime | None
    completed_at: datetime | None
    duration_seconds: float | None
    leads_processed: int
    leads_succeeded: int
    leads_failed: int
    parts: int
    partitions_total: int
    partitions_covered: int
    backlog: int | None
    reason: str | None
    error: str | None
    counted: bool
    recorded_at: datetime
    skipped_ticks: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.SKIPPED)


@dataclass(frozen=True, slots=True)
class MetricsRow(Row):
    job: str
    tenant_id: str
    total_runs: int = 0
    successful_runs: int = 0
    failed_runs: int = 0
    skipped_runs: int = 0
    total_leads_processed: int = 0
    total_leads_succeeded: int = 0
    total_leads_failed: int = 0
    total_duration_seconds: float = 0.0
    consecutive_failures: int = 0
    last_run_at: datetime | None = None
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None

    @property
    def success_rate(self) -> float:
        """successful / (successful + failed) x 100; skipped runs excluded; 100 with none."""
        decided = self.successful_runs + self.failed_runs
        return round(self.successful_runs / decided * 100, 2) if decided else 100.0

    @property
    def lead_success_rate(self) -> float:
        return (round(self.total_leads_succeeded / self.total_leads_processed * 100, 2)
                if self.total_leads_processed else 100.0)

    @property
    def average_duration_seconds(self) -> float:
        decided = self.successful_runs + self.failed_runs
        return round(self.total_duration_seconds / decided, 3) if decided else 0.0

    @property
    def health_status(self) -> Health:
        """failed at 3+ consecutive failures; degraded on any failure streak or < 50% success."""
        if self.consecutive_failures >= 3:
            return Health.FAILED
        if self.consecutive_failures > 0 or self.success_rate < 50:
            return Health.DEGRADED
        return Health.HEALTHY

    def as_dict(self) -> dict[str, Any]:
        """The seed dashboard's CronMetrics shape, plus timestamps."""
        return {
            "total_runs": self.total_runs,
            "successful_runs": self.successful_runs,
            "failed_runs": self.failed_runs,
            "skipped_runs": self.skipped_runs,
            "success_rate": self.success_rate,
            "total_leads_processed": self.total_leads_processed,
            "total_leads_succeeded": self.total_leads_succeeded,
            "total_leads_failed": self.total_leads_failed,
            "lead_success_rate": self.lead_success_rate,
            "average_duration_seconds": self.average_duration_seconds,
            "consecutive_failures": self.consecutive_failures,
            "health_status": self.health_status.value,
            "last_run_at": _iso(self.last_run_at),
            "last_success_at": _iso(self.last_success_at),
            "last_failure_at": _iso(self.last_failure_at),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def jsonable(value: Any) -> Any:
    """Round-trip through JSON so payload columns compare equal after a database read."""
    return json.loads(json.dumps(value, default=str))
