-- Stage runtime: shared run budgets and live instances. Owner: services/runtime/budget.py,
-- services/runtime/instances.py.

-- One row per run: every instance of the job claims leads from it, so the cap holds across
-- instances (ARCHITECTURE.md, "Runs").
CREATE TABLE IF NOT EXISTS stage_run_budgets (
    run_id      uuid PRIMARY KEY,
    job         text NOT NULL,
    total       integer NOT NULL CHECK (total >= 0),
    claimed     integer NOT NULL DEFAULT 0 CHECK (claimed >= 0 AND claimed <= total),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Instances announce themselves when their consumers are ready; tests and `leadflow status`
-- read it.
CREATE TABLE IF NOT EXISTS stage_instances (
    job          text NOT NULL,
    instance_id  text NOT NULL,
    pid          integer NOT NULL,
    ready_at     timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now(),
    partitions   integer[] NOT NULL DEFAULT '{}',
    backlog      bigint,
    PRIMARY KEY (job, instance_id)
);
