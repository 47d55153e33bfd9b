"""Read-model row types: immutable, built from events or from database rows (``from_row``).
A run's and its parts' rows are the run fold's own (events/runs.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from events import Health
from events.runs import Row


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
