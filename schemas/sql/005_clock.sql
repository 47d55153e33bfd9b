-- Clock: what the active clock handled, so a restart or a standby neither repeats nor skips a
-- tick. Owner: services/clock/store.py.

-- Per schedule (job, scope): every occurrence up to last_scheduled_for was emitted or passed
-- over by the catch-up policy. Only ever moves forward.
CREATE TABLE IF NOT EXISTS clock_cursors (
    job                 text NOT NULL,
    scope               text NOT NULL,
    last_scheduled_for  timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, scope)
);

-- Every tick on clock.ticks (the clock's own, and manual / backfill ones it reads back).
CREATE TABLE IF NOT EXISTS clock_ticks (
    tick_id        uuid PRIMARY KEY,
    job            text NOT NULL,
    scope          text NOT NULL,
    tenant_id      text NOT NULL,
    campaign_id    text,
    scheduled_for  timestamptz NOT NULL,
    source         text NOT NULL,
    max_leads      integer,
    requested_by   text,
    retry_of       uuid,
    attempt        integer NOT NULL DEFAULT 0,
    recorded_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS clock_ticks_job_scheduled ON clock_ticks (job, scope, scheduled_for);

-- Retries of failed runs, due at failure time + backoff * 2^(attempt-1). One row per
-- (first run, attempt), so a failure reported twice schedules one retry.
CREATE TABLE IF NOT EXISTS clock_retries (
    retry_of       uuid NOT NULL,
    attempt        integer NOT NULL CHECK (attempt >= 1),
    tick_id        uuid NOT NULL UNIQUE,
    failed_run     uuid NOT NULL,
    job            text NOT NULL,
    tenant_id      text NOT NULL,
    campaign_id    text,
    scheduled_for  timestamptz NOT NULL,
    max_leads      integer,
    due_at         timestamptz NOT NULL,
    status         text NOT NULL DEFAULT 'pending',   -- pending | emitted | cancelled
    note           text,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (retry_of, attempt)
);
CREATE INDEX IF NOT EXISTS clock_retries_pending ON clock_retries (due_at) WHERE status = 'pending';

-- Outcome of each run the clock saw end (failed wins over completed for multi-part runs);
-- the failure streak is the failed rows after the last completed one.
CREATE TABLE IF NOT EXISTS clock_run_outcomes (
    seq      bigserial UNIQUE,
    run_id   uuid PRIMARY KEY,
    job      text NOT NULL,
    status   text NOT NULL
);
CREATE INDEX IF NOT EXISTS clock_run_outcomes_job ON clock_run_outcomes (job, seq);

-- Pause state per job: paused jobs get no scheduled, catch-up or retry ticks.
CREATE TABLE IF NOT EXISTS clock_jobs (
    job           text PRIMARY KEY,
    paused        boolean NOT NULL DEFAULT false,
    reason        text,
    paused_at     timestamptz,
    -- outcomes up to this seq are forgiven by a resume (the streak restarts after it)
    streak_floor  bigint NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Where the active clock is in clock.ticks and jobs.events (written with what it derived).
CREATE TABLE IF NOT EXISTS clock_offsets (
    topic        text NOT NULL,
    partition    integer NOT NULL,
    next_offset  bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);
