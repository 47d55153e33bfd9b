"""When a schedule expression fires, as pure functions of time: ``every <duration>`` counts real
time from 1970-01-01T00:00Z whatever the time zone; a cron expression is wall-clock time in its
time zone. A wall-clock time that occurs twice (DST fall-back) fires once, at its first
occurrence; one that never occurs (DST spring-forward) fires once, when the clocks jump.

Here rather than in the clock because the config validates every schedule when it loads.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import islice, pairwise
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from .durations import format_duration, parse_duration

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EVERY = "every "


def every_interval(expression: str) -> timedelta | None:
    text = expression.strip()
    if not text.lower().startswith(_EVERY):
        return None
    return parse_duration(text[len(_EVERY):])


def is_cron(text: str) -> bool:
    """Whether ``text`` is a cron expression croniter reads (5 fields, or 6 with seconds)."""
    return bool(croniter.is_valid(text))


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def to_instant(local: datetime, zone: ZoneInfo) -> datetime:
    """A naive wall-clock time in ``zone`` as a UTC instant (first of two; the jump for none)."""
    first = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == local:
        return first
    # Skipped by a DST jump: fire at the jump, the first instant on the new offset.
    low = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
    after = first.astimezone(zone).utcoffset()
    high = first
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(zone).utcoffset() == after:
            high = mid
        else:
            low = mid
    return high.replace(microsecond=0) if high.microsecond else high


def _local(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def instants(expression: str, timezone: str, after: datetime) -> Iterator[datetime]:
    """When ``expression`` fires (UTC instants strictly after ``after``), in order, without end."""
    after = after.astimezone(UTC)
    interval = every_interval(expression)
    if interval is not None:
        step = micros(interval)
        k = micros(after - EPOCH) // step + 1
        while True:
            yield EPOCH + timedelta(microseconds=k * step)
            k += 1
    zone = _zone(timezone)
    cron = croniter(expression, _local(after, zone))
    last: datetime | None = None
    while True:
        try:
            local = cron.get_next(datetime)
        except CroniterBadDateError:
            return  # the expression never matches again (e.g. '0 0 30 2 *')
        instant = to_instant(local, zone)
        # A jump maps several skipped times to one instant; a fold can map back behind ``after``.
        if instant > after and instant != last:
            last = instant
            yield instant


def micros(delta: timedelta) -> int:
    """``delta`` in whole microseconds (exact, unlike total_seconds())."""
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def shortest_gap(expression: str, timezone: str = "UTC", *, sample: int = 400) -> timedelta | None:
    """Shortest wall-clock gap between consecutive ticks over a sample (None: fires < 2 times)."""
    interval = every_interval(expression)
    if interval is not None:
        return interval
    fired = list(islice(instants(expression, timezone, datetime(2024, 1, 1, tzinfo=UTC)), sample))
    gaps = [b - a for a, b in pairwise(fired)]
    return min(gaps) if gaps else None


def schedule_problem(expression: str, timezone: str, jitter_seconds: float) -> str | None:
    """Why a valid-looking schedule cannot work (never fires, jitter reaches the next tick)."""
    if next(instants(expression, timezone, datetime(2024, 1, 1, tzinfo=UTC)), None) is None:
        return f"{expression!r} never fires (no date matches it); check the day and month fields"
    if jitter_seconds > 0:
        gap = shortest_gap(expression, timezone)
        if gap is not None and jitter_seconds >= gap.total_seconds():
            return (f"jitter_seconds ({jitter_seconds:g}) must be shorter than the shortest gap "
                    f"between ticks of {expression!r} ({format_duration(gap)}); lower it")
    return None
