"""Scaling decisions: each instance's first claim is its share of the cap, later claims are
small, a small grant is spread over the partitions, and the suggested instance count."""

from __future__ import annotations

from collections import Counter

import pytest
from aiokafka import TopicPartition

from services.cli.status_commands import suggest_instances
from services.runtime.budget import first_claim, later_claim
from services.runtime.drain import fair_order


@pytest.mark.parametrize(("total", "mine", "partitions", "expected"), [
    (300, 4, 12, 100),     # three instances with four partitions each: a third each
    (100, 4, 12, 34),      # rounded up: the shares may add up to a little more than the cap
    (100, 12, 12, 100),    # alone: the whole cap in one claim
    (100, 0, 12, 1),       # no partition yet: the smallest claim, never zero
    (5, 1, 12, 1),
    (20_000, 3, 12, 5_000),
    (50, 3, 0, 50),        # partition count unknown: behave as if alone
])
def test_the_first_claim_is_the_instances_share_of_the_cap(total: int, mine: int,
                                                           partitions: int, expected: int) -> None:
    assert first_claim(total, mine, partitions) == expected


def test_first_claims_of_all_instances_cover_the_cap_without_starving_anyone() -> None:
    for total in (1, 7, 100, 301, 10_000):
        shares = [first_claim(total, mine, 12) for mine in (5, 4, 3)]
        assert all(s >= 1 for s in shares)
        assert total <= sum(shares) <= total + 3


@pytest.mark.parametrize(("total", "partitions", "batch", "expected"), [
    (300, 12, 500, 25), (100, 12, 500, 9), (100_000, 12, 500, 500), (3, 12, 500, 1),
])
def test_later_claims_are_one_partitions_share_at_most_a_batch(
        total: int, partitions: int, batch: int, expected: int) -> None:
    assert later_claim(total, partitions, batch) == expected


def tps(*numbers: int) -> list[TopicPartition]:
    return [TopicPartition("leads.new", n) for n in numbers]


def test_partitions_are_taken_least_served_first_in_a_rotating_order() -> None:
    parts = tps(3, 0, 2, 1)
    assert fair_order(parts, Counter(), 0) == tps(0, 1, 2, 3)
    assert fair_order(parts, Counter(), 1) == tps(1, 2, 3, 0)
    assert fair_order(parts, Counter(), 6) == tps(2, 3, 0, 1)
    served = Counter({tps(1)[0]: 2, tps(2)[0]: 1})
    assert fair_order(parts, served, 1) == tps(3, 0, 2, 1)
    assert fair_order([], Counter(), 3) == []


def test_a_small_grant_taken_by_quota_reaches_every_partition() -> None:
    """Simulate the drain: 12 partitions with work, a grant of 24 taken in quotas."""
    parts = tps(*range(12))
    served: Counter[TopicPartition] = Counter()
    wanted, rotation = 24, 0
    while wanted:
        order = fair_order(parts, served, rotation)
        rotation += 1
        quota = -(-wanted // len(order))
        for tp in order:
            take = min(quota, wanted)
            if not take:
                break
            served[tp] += take
            wanted -= take
    assert set(served.values()) == {2}


@pytest.mark.parametrize(("backlog", "cap", "rate", "target", "partitions", "current", "expected"), [
    (10_000, 100_000, 1_000.0, 60, 12, 1, 1),    # 10 s of work for one instance
    (240_000, 100_000, 1_000.0, 60, 12, 1, 2),   # a run does at most the cap: 100 s -> 2
    (5_000_000, 5_000_000, 1_000.0, 60, 12, 3, 12),  # capped by the partition count
    (0, 100, 1_000.0, 60, 12, 4, 1),             # nothing waiting: one is enough
    (None, 100, 1_000.0, 60, 12, 3, 3),          # unknown backlog: keep what runs
    (5_000, 100_000, None, 60, 12, 2, 2),        # unknown rate: keep what runs
    (5_000, 100_000, None, 60, 12, 0, 1),
])
def test_suggested_instances(backlog: int | None, cap: int, rate: float | None, target: float,
                             partitions: int, current: int, expected: int) -> None:
    assert suggest_instances(backlog, cap, rate, target, partitions, current) == expected
