-- Held shares of a run's budget. Owner: services/runtime/budget.py.

-- Each instance's first claim is its partitions' share of the cap. Until every partition's share
-- is claimed (or the share window has passed since the run opened), later claims leave the
-- unclaimed shares alone: an instance that reads the tick late still gets its share.
ALTER TABLE stage_run_budgets
    ADD COLUMN IF NOT EXISTS partitions_total   integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS partitions_claimed integer NOT NULL DEFAULT 0;
