"""Log filters: a client library's repeated warnings are held back to one line per window."""

from __future__ import annotations

import logging

from services.runtime.logging import RepeatFilter


def record(name: str, msg: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def test_a_library_error_repeated_many_times_a_second_is_one_line_per_window() -> None:
    now = [0.0]
    repeat = RepeatFilter(window=30, clock=lambda: now[0])
    passed = []
    for _ in range(300):  # ten seconds at 30 a second, then the window ends
        now[0] += 1 / 30
        line = record("aiokafka.consumer.group_coordinator", "Unknown topic %s")
        if repeat.filter(line):
            passed.append(line.msg)
    now[0] += 25
    line = record("aiokafka.consumer.group_coordinator", "Unknown topic %s")
    assert repeat.filter(line)
    assert passed == ["Unknown topic %s"]
    assert line.msg == "Unknown topic %s (and 299 more like it in the last 30s)"


def test_leadflow_lines_and_other_messages_always_pass() -> None:
    repeat = RepeatFilter(clock=lambda: 0.0)
    assert all(repeat.filter(record("services.projector.service", "paused")) for _ in range(5))
    assert all(repeat.filter(record("aiokafka", "x", logging.INFO)) for _ in range(5))
    assert repeat.filter(record("aiokafka", "one")) and repeat.filter(record("aiokafka", "two"))
