"""Backfill: the ticks a schedule would have fired in a past interval. Pure planning; the CLI
publishes them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from itertools import islice
from uuid import UUID
from zoneinfo import ZoneInfo

from events import TickEmitted

from .errors import BackfillRefused
from .schedule import Schedule, between
from .ticks import backfill_tick


class Reprocess(StrEnum):
    """Which instants that already had a run are ticked again."""

    NONE = "none"  # only instants with no completed or failed run
    FAILED = "failed"  # also those whose run failed
    ALL = "all"  # every instant


@dataclass(frozen=True, slots=True)
class BackfillEntry:
    """One instant of the interval: what ran for it before, and the tick it gets (None: none)."""

    scheduled_for: datetime
    existing: str  # 'none', 'completed' or 'failed'
    tick: TickEmitted | None


def parse_time(text: str, timezone: str, now: datetime) -> datetime:
    """'2026-11-01', '2026-11-01T02:00', '2026-11-01 02:00+01:00' or 'now'; naive is local."""
    cleaned = text.strip()
    if cleaned.lower() == "now":
        return now.astimezone(UTC)
    try:
        parsed = datetime.fromisoformat(cleaned.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(cleaned), datetime.min.time())
        except ValueError:
            raise BackfillRefused(f"{text!r} is not a time; use ISO 8601 such as 2026-11-01, "
                                  "2026-11-01T02:00 or 2026-11-01T02:00+01:00") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(timezone))
    return parsed.astimezone(UTC)


def backfill_instants(schedule: Schedule, start: datetime, end: datetime, *, now: datetime,
                      limit: int, force: bool = False) -> list[datetime]:
    """The schedule's instants in ``[start, end)``; refuses the future or more than ``limit``
    ticks unless ``force``."""
    if start >= end:
        raise BackfillRefused(f"--from ({start.isoformat()}) must be before --to ({end.isoformat()})")
    if end > now + timedelta(seconds=1) and not force:
        raise BackfillRefused(
            f"the interval ends in the future ({end.isoformat()}); backfill replays the past: "
            f"use --to {now.replace(microsecond=0).isoformat()} or earlier (or --force)")
    instants = list(between(schedule, start, end) if force
                    else islice(between(schedule, start, end), limit + 1))
    if len(instants) > limit and not force:
        raise BackfillRefused(
            f"{schedule.job.value} would get more than {limit} ticks in that interval; narrow "
            "it, raise clock.max_backfill_ticks in the config, or pass --force")
    return instants


def wanted(existing: str, reprocess: Reprocess) -> bool:
    """Whether an instant whose runs ended ``existing`` is ticked again."""
    if reprocess is Reprocess.ALL or existing == "none":
        return True
    return reprocess is Reprocess.FAILED and existing == "failed"


def plan_backfill(schedule: Schedule, instants: list[datetime], existing: dict[datetime, str], *,
                  reprocess: Reprocess, request: UUID, recorded_at: datetime, requested_by: str,
                  max_leads: int | None = None) -> list[BackfillEntry]:
    """One entry per instant, in order, with a tick where ``reprocess`` wants one."""
    entries: list[BackfillEntry] = []
    for instant in instants:
        status = existing.get(instant, "none")
        tick = backfill_tick(schedule, instant, request=request, recorded_at=recorded_at,
                             requested_by=requested_by, max_leads=max_leads) \
            if wanted(status, reprocess) else None
        entries.append(BackfillEntry(instant, status, tick))
    return entries
