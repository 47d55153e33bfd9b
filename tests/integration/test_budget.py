"""One run's shared budget on the real Postgres: each instance's first claim is its partitions'
share, and a share stays held for its owner while the owner is late to read the tick."""

from __future__ import annotations

import uuid

import asyncpg

from services.runtime.budget import RunBudget

CAP, PARTITIONS = 600, 12


async def opened(pool: asyncpg.Pool, *, window: float) -> RunBudget:
    budget = RunBudget(pool, uuid.uuid4(), "score", CAP, share_window=window)
    await budget.open()
    return budget


async def test_a_late_instance_still_gets_its_share_while_the_others_ask_for_more(
        pool: asyncpg.Pool) -> None:
    budget = await opened(pool, window=60)
    assert await budget.claim_share(4, PARTITIONS) == 200  # s1 reads the tick first
    assert await budget.claim_share(4, PARTITIONS) == 200  # s3
    # s1 and s3 are through their shares; s2 has not read the tick yet: its share is held.
    assert await budget.claim(5) == 0
    assert await budget.claim_share(4, PARTITIONS) == 200  # s2, late
    assert await budget.claim(5) == 0  # the cap is reached
    assert await budget.remaining() == 0


async def test_what_nobody_claimed_within_the_window_goes_to_whoever_has_work(
        pool: asyncpg.Pool) -> None:
    budget = await opened(pool, window=0)  # the window is over: s2 is dead or stuck
    assert await budget.claim_share(4, PARTITIONS) == 200
    assert await budget.claim_share(4, PARTITIONS) == 200
    assert await budget.claim(150) == 150
    assert await budget.claim(150) == 50
    assert await budget.remaining() == 0


async def test_released_leads_are_free_and_the_held_share_is_rounded_up(
        pool: asyncpg.Pool) -> None:
    budget = RunBudget(pool, uuid.uuid4(), "score", 100, share_window=60)
    await budget.open()
    assert await budget.claim_share(5, PARTITIONS) == 42  # ceil(100 x 5/12)
    await budget.release(40)  # caught up with 2 of them used
    # 98 left, the 7 unclaimed partitions hold ceil(100 x 7/12) = 59 of them.
    assert await budget.claim(100) == 39
    assert await budget.claim_share(7, PARTITIONS) == 59
    assert await budget.remaining() == 0


async def test_a_budget_without_partitions_is_first_come(pool: asyncpg.Pool) -> None:
    """Harvest and contact's follow-ups claim without partitions: nothing is held."""
    budget = await opened(pool, window=60)
    assert await budget.claim(450) == 450
    assert await budget.claim(450) == 150
