"""What a replay is asked to do, and the names it goes by. Pure."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid5

from events import JobName
from events.ids import NAMESPACE

from .errors import ReplayError

_AGO = re.compile(r"^(\d+)\s*([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_time(text: str, *, now: datetime) -> datetime:
    """A point in time: ISO 8601 (a date is midnight UTC, no offset means UTC) or a duration
    ago such as ``30d``, ``12h``, ``45m``."""
    value = text.strip()
    ago = _AGO.match(value)
    if ago:
        return now - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ReplayError(f"{text!r} is not a time: use ISO 8601 (2026-11-01 or "
                          "2026-11-01T08:00:00+01:00) or a duration ago (30d, 12h, 45m)") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class ReplaySpec:
    """A replay request. ``replay_id`` names one to resume (or the id for a new one)."""

    stage: JobName
    from_at: datetime | None
    to_at: datetime | None = None
    tenant: str | None = None
    dry_run: bool = False
    replay_id: str | None = None
    batch_size: int = 500
    requested_by: str | None = None
    sample_size: int = 10

    def __post_init__(self) -> None:
        if self.from_at is None and (self.replay_id is None or self.dry_run):
            raise ReplayError("--from is required (or --replay-id to resume an earlier replay)")
        if self.to_at is not None and self.from_at is not None and self.to_at <= self.from_at:
            raise ReplayError(f"--to ({self.to_at.isoformat()}) must be later than --from "
                              f"({self.from_at.isoformat()})")
        if self.batch_size < 1:
            raise ReplayError("--batch-size must be at least 1")


def new_replay_id(stage: JobName, at: datetime) -> str:
    """``<stage>-<UTC time>-<4 hex>``: readable, sortable, unique enough to type back."""
    return f"{stage.value}-{at.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def replay_run_id(replay_id: str) -> UUID:
    """The correlation id every output of a replay carries (its 'run')."""
    return uuid5(NAMESPACE, f"replay\x1f{replay_id}")
