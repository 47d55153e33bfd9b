"""Overlap policy: a scheduled tick that arrived while an earlier run here was going."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from events import JobName, TickEmitted, TickSource
from services.runtime.config import JobConfig, Overlap
from services.runtime.runs import RunController, RunSpan, overlap_verdict

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


def test_an_instance_lagging_by_many_runs_still_skips_the_ticks_that_arrived_during_them() -> None:
    # 40 back-to-back runs of 10 s each; the instance then reads the ticks the clock recorded
    # every second meanwhile. Every one of them arrived while a run here was going.
    controller = RunController(JobName.SCORE, JobConfig(schedule="every 1s"), executor=None,
                               publisher=None, pool=None, instance_id="score-1")  # type: ignore[arg-type]
    controller.spans.extend(RunSpan(at(10 * i), at(10 * i + 10)) for i in range(40))
    verdicts = [controller.skip_reason(tick(second)) for second in range(400)]
    assert verdicts == ["overlap"] * 400
    assert len(controller.spans) == 1  # the spans no later tick can fall in are forgotten
    assert controller.skip_reason(tick(400)) is None
    assert not controller.spans
