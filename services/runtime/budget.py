"""Shared run budgets: every instance of a job claims leads from one Postgres row per run.

This keeps ``max_leads_per_run`` a cap on the whole run however many instances share it.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg


def first_claim(total: int, mine: int, partitions: int) -> int:
    """An instance's first claim: its share of the cap, total x its partitions / all (rounded up).

    Claiming only a share first keeps the instance that reads the tick first from taking the
    whole cap and starving the partitions the others own.
    """
    if partitions <= 0 or mine >= partitions:
        return total
    return max(1, -(-total * max(mine, 0) // partitions))


def later_claim(total: int, partitions: int, batch_size: int) -> int:
    """Claims after the first are small (one partition's share, at most a batch), so what one
    instance leaves unused is spread over those that still have work."""
    return max(1, min(batch_size, -(-total // max(partitions, 1))))


_OPEN = """
INSERT INTO stage_run_budgets (run_id, job, total) VALUES ($1, $2, $3)
ON CONFLICT (run_id) DO NOTHING
"""

_CLAIM = """
WITH before AS (
    SELECT claimed FROM stage_run_budgets WHERE run_id = $1 FOR UPDATE
)
UPDATE stage_run_budgets AS b
SET claimed = b.claimed + LEAST($2, b.total - b.claimed)
FROM before
WHERE b.run_id = $1
RETURNING b.claimed - before.claimed
"""

_RELEASE = """
UPDATE stage_run_budgets SET claimed = GREATEST(claimed - $2, 0) WHERE run_id = $1
"""

_REMAINING = "SELECT total - claimed FROM stage_run_budgets WHERE run_id = $1"


class RunBudget:
    """Claims and releases leads against one run's cap."""

    def __init__(self, pool: asyncpg.Pool, run_id: UUID, job: str, total: int) -> None:
        self._pool = pool
        self.run_id = run_id
        self.job = job
        self.total = total

    async def open(self) -> None:
        """Create the run's row unless another instance did (the first tick reader sets the cap)."""
        await self._pool.execute(_OPEN, self.run_id, self.job, self.total)

    async def claim(self, wanted: int) -> int:
        """Take up to ``wanted`` leads from the budget; 0 means the run's cap is reached."""
        if wanted <= 0:
            return 0
        granted = await self._pool.fetchval(_CLAIM, self.run_id, wanted)
        return int(granted or 0)

    async def release(self, unused: int) -> None:
        """Give back leads claimed but not processed, so other instances can use them."""
        if unused > 0:
            await self._pool.execute(_RELEASE, self.run_id, unused)

    async def remaining(self) -> int:
        value = await self._pool.fetchval(_REMAINING, self.run_id)
        return int(value or 0)
