"""Offsets for times by binary search: the first offset stamped at or after a time, in about
log2(n) lookups, whatever the gaps and repeats in the stamps."""

from __future__ import annotations

import bisect
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.replay.log_check import shortfalls
from services.replay.offsets import first_at_or_after, usable
from services.runtime.partitions import next_topic_wait


def lookups(stamps: list[int], calls: list[int]):
    """timestamp_at over a partition whose record at offset o is stamped stamps[o]."""
    async def timestamp_at(offset: int) -> int | None:
        calls.append(offset)
        return stamps[offset] if offset < len(stamps) else None
    return timestamp_at


@pytest.mark.parametrize(("target", "expected"), [
    (0, 0), (100, 0), (101, 2), (150, 2), (200, 2), (201, 5), (300, 5), (301, 6), (10_000, 6),
])
async def test_the_first_offset_at_or_after_the_time(target: int, expected: int) -> None:
    stamps = [100, 100, 200, 200, 200, 300]
    assert await first_at_or_after(0, len(stamps), target, lookups(stamps, [])) == expected


async def test_an_empty_range_answers_its_start() -> None:
    calls: list[int] = []
    assert await first_at_or_after(7, 7, 123, lookups([], calls)) == 7
    assert calls == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=50), max_size=300), st.integers(0, 60),
       st.integers(0, 20))
async def test_matches_a_sorted_search_in_logarithmic_lookups(
        deltas: list[int], target: int, lo: int) -> None:
    stamps, now = [], 0
    for d in deltas:
        now += d
        stamps.append(now)
    target *= 40
    lo = min(lo, len(stamps))
    calls: list[int] = []
    found = await first_at_or_after(lo, len(stamps), target, lookups(stamps, calls))
    assert found == lo + bisect.bisect_left(stamps[lo:], target)
    assert len(calls) <= math.ceil(math.log2(len(stamps) - lo + 1)) + 1


@pytest.mark.parametrize(("stamp", "expected"), [(None, False), (-1, False), (0, True),
                                                  (1_795_343_196_092, True)])
def test_the_brokers_answer_is_kept_only_with_a_real_timestamp(stamp: int | None,
                                                               expected: bool) -> None:
    assert usable(stamp) is expected


def test_the_log_check_names_partitions_the_log_no_longer_holds() -> None:
    folded = {("leads.new", 0): 10, ("leads.new", 1): 5, ("leads.new", 2): 0, ("jobs.events", 0): 7}
    ends = {("leads.new", 0): 4, ("leads.new", 1): 9, ("leads.new", 2): None}
    found = shortfalls(folded, ends)
    assert [(s.topic, s.partition, s.folded_to, s.log_end) for s in found] == [
        ("jobs.events", 0, 7, None), ("leads.new", 0, 10, 4)]  # nothing folded from [2]: fine
    assert found[1].describe() == ("leads.new[0]: the log ends at offset 4, the read models were "
                                   "folded to 10 (6 events gone)")
    assert "missing on the broker" in found[0].describe()


def test_looks_for_missing_topics_back_off_to_ten_seconds() -> None:
    delays, delay = [], 0.0
    for _ in range(7):
        delay = next_topic_wait(delay)
        delays.append(delay)
    assert delays == [1, 2, 4, 8, 10, 10, 10]
