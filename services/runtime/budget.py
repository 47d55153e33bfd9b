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

# One statement per claim, under the row's lock. A first claim ($3) is the instance's share and
# counts its partitions ($4 of $5); a later claim leaves the shares of partitions nobody has
# claimed yet while the run is younger than the share window ($6 seconds).
_CLAIM = """
WITH before AS (
    SELECT claimed,
           GREATEST(total - claimed - CASE
               WHEN NOT $3 AND partitions_total > partitions_claimed
                    AND now() < created_at + make_interval(secs => $6)
               THEN (total * (partitions_total - partitions_claimed) + partitions_total - 1)
                    / partitions_total
               ELSE 0 END, 0) AS free
    FROM stage_run_budgets WHERE run_id = $1 FOR UPDATE
)
UPDATE stage_run_budgets AS b
SET claimed = b.claimed + LEAST($2, before.free),
    partitions_claimed = b.partitions_claimed + $4,
    partitions_total = GREATEST(b.partitions_total, $5)
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

    #: How long a share stays held for the instance owning its partitions (seconds from the
    #: run's opening). An instance that reads the tick later than this (stuck, or dead and not yet
    #: out of its group) finds its share taken by those with work left.
    SHARE_WINDOW = 10.0

    def __init__(self, pool: asyncpg.Pool, run_id: UUID, job: str, total: int, *,
                 share_window: float = SHARE_WINDOW) -> None:
        self._pool = pool
        self.run_id = run_id
        self.job = job
        self.total = total
        self.share_window = share_window

    async def open(self) -> None:
        """Create the run's row unless another instance did (the first tick reader sets the cap)."""
        await self._pool.execute(_OPEN, self.run_id, self.job, self.total)

    async def claim_share(self, mine: int, partitions: int) -> int:
        """An instance's first claim: the share of its ``mine`` partitions out of ``partitions``."""
        return await self._claim(first_claim(self.total, mine, partitions), True,
                                 max(mine, 0), max(partitions, 0))

    async def claim(self, wanted: int) -> int:
        """Take up to ``wanted`` leads, leaving the shares still held for late instances; 0 means
        the cap is reached (or all that is left is held)."""
        return await self._claim(wanted, False, 0, 0)

    async def _claim(self, wanted: int, first: bool, mine: int, partitions: int) -> int:
        if wanted <= 0:
            return 0
        granted = await self._pool.fetchval(_CLAIM, self.run_id, wanted, first, mine, partitions,
                                            float(self.share_window))
        return int(granted or 0)

    async def release(self, unused: int) -> None:
        """Give back leads claimed but not processed, so other instances can use them."""
        if unused > 0:
            await self._pool.execute(_RELEASE, self.run_id, unused)

    async def remaining(self) -> int:
        value = await self._pool.fetchval(_REMAINING, self.run_id)
        return int(value or 0)
