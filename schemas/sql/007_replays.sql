-- Replays: a stage's input re-run through today's logic (docs/replay.md). Owner:
-- services/replay/store.py. A replay's positions, counts and decided leads are written in one
-- transaction per batch, after the batch's outputs are acknowledged, so an interrupted replay
-- resumes where it stopped and decides each lead once.
CREATE TABLE IF NOT EXISTS replays (
    replay_id     text PRIMARY KEY,
    stage         text NOT NULL,
    from_at       timestamptz NOT NULL,
    to_at         timestamptz,                      -- NULL: the end of the log at the start
    tenant_id     text,                             -- NULL: every tenant
    status        text NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    decided_at    timestamptz NOT NULL,             -- decision time of every output (resume: same)
    requested_by  text,
    error         text,
    events_read   bigint NOT NULL DEFAULT 0,        -- input messages read in the range
    replayed      bigint NOT NULL DEFAULT 0,        -- leads whose decision changed (published)
    unchanged     bigint NOT NULL DEFAULT 0,        -- leads today's logic decides the same
    kept          bigint NOT NULL DEFAULT 0,        -- leads past the stage (ROUTED, CONTACTED)
    in_flight     bigint NOT NULL DEFAULT 0,        -- leads whose last event awaits its stage
    missing       bigint NOT NULL DEFAULT 0,        -- leads the read models do not know yet
    failed        bigint NOT NULL DEFAULT 0,        -- inputs sent to leads.dlq
    skipped       bigint NOT NULL DEFAULT 0,        -- other tenants, other types, repeats
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz
);
CREATE INDEX IF NOT EXISTS replays_open ON replays (stage, status);

CREATE TABLE IF NOT EXISTS replay_positions (
    replay_id     text NOT NULL REFERENCES replays (replay_id) ON DELETE CASCADE,
    topic         text NOT NULL,
    partition     integer NOT NULL,
    start_offset  bigint NOT NULL,
    end_offset    bigint NOT NULL,                  -- exclusive, fixed when the replay starts
    next_offset   bigint NOT NULL,
    PRIMARY KEY (replay_id, topic, partition)
);

-- Leads a replay has decided (any verdict): a lead with several inputs in the range is decided
-- once, and a resumed replay never decides it again. Emptied when the replay completes.
CREATE TABLE IF NOT EXISTS replay_leads (
    replay_id  text NOT NULL REFERENCES replays (replay_id) ON DELETE CASCADE,
    lead_id    uuid NOT NULL,
    PRIMARY KEY (replay_id, lead_id)
);
