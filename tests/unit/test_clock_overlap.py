"""Overlap policy: a scheduled tick that arrived while an earlier run here was going."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from events import JobName, TickEmitted, TickSource
from services.runtime.config import Overlap
from services.runtime.runs import RunSpan, overlap_verdict

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def tick(arrived: float, source: TickSource = TickSource.SCHEDULE) -> TickEmitted:
    return TickEmitted(event_id=uuid.uuid4(), occurred_at=at(arrived), recorded_at=at(arrived),
                       tenant_id="*", job=JobName.SCORE, scheduled_for=at(arrived), source=source)


RUN = [RunSpan(at(0), at(10))]

VERDICTS = [
    # (policy, arrived, source, spans, expected (reason, slot))
    (Overlap.SKIP, 5, TickSource.SCHEDULE, RUN, ("overlap", None)),
    (Overlap.SKIP, 10, TickSource.SCHEDULE, RUN, (None, None)),  # arrived as the run ended
    (Overlap.SKIP, 11, TickSource.SCHEDULE, RUN, (None, None)),
    (Overlap.SKIP, 5, TickSource.MANUAL, RUN, (None, None)),  # explicit requests always run
    (Overlap.SKIP, 5, TickSource.CATCHUP, RUN, (None, None)),
    (Overlap.SKIP, 5, TickSource.BACKFILL, RUN, (None, None)),
    (Overlap.SKIP, 5, TickSource.RETRY, RUN, (None, None)),
    (Overlap.ALLOW, 5, TickSource.SCHEDULE, RUN, (None, None)),
    (Overlap.BUFFER_ONE, 5, TickSource.SCHEDULE, RUN, (None, 0)),  # takes the one slot
    (Overlap.BUFFER_ONE, 5, TickSource.SCHEDULE, [RunSpan(at(0), at(10), buffered=True)],
     ("overlap", None)),
    (Overlap.BUFFER_ONE, 15, TickSource.SCHEDULE, [RunSpan(at(0), at(10), True),
                                                   RunSpan(at(10), at(20))], (None, 1)),
    (Overlap.SKIP, 5, TickSource.SCHEDULE, [], (None, None)),  # nothing ran here yet
]


@pytest.mark.parametrize(("policy", "arrived", "source", "spans", "expected"), VERDICTS)
def test_overlap_verdict(policy: Overlap, arrived: float, source: TickSource,
                         spans: list[RunSpan], expected: tuple[str | None, int | None]) -> None:
    assert overlap_verdict(policy, tick(arrived, source), spans) == expected
