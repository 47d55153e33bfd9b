-- Read models folded from the log by the projector (services/projector/). Applied into one
-- Postgres schema (live: leadflow_read; a rebuild writes a shadow schema and swaps it in), so
-- names here are unqualified. The consumed offsets live beside the models they produced.

CREATE TABLE IF NOT EXISTS projector_offsets (
    topic        text NOT NULL,
    partition    integer NOT NULL,
    next_offset  bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);

CREATE TABLE IF NOT EXISTS leads (
    lead_id            uuid PRIMARY KEY,
    tenant_id          text NOT NULL,
    campaign_id        text NOT NULL,
    email              text NOT NULL,
    first_name         text,
    last_name          text,
    title              text,
    company            text,
    domain             text,
    industry           text,
    employees          integer,
    country            text,
    status             text NOT NULL,
    version            integer NOT NULL,
    score              integer,
    score_factors      jsonb,
    model_version      text,
    qualified          boolean,
    reasons            text[],
    segment            text,
    sequence_id        text,
    owner              text,
    contact_step       integer,
    last_contacted_at  timestamptz,
    next_action_at     timestamptz,
    do_not_contact     boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    last_event_id      uuid NOT NULL
);
-- Every event rewrites its lead's row. With room left on each page and no index on a column
-- an event changes, the new version is a HOT update: no index entry written, the old version
-- pruned in place. (Set here for new and older tables alike; older ones get it on new pages.)
ALTER TABLE leads SET (fillfactor = 70);

-- Leads per tenant, campaign and current status, moved by the projector in the transaction
-- that writes the leads: the dashboard, /metrics and the campaigns list read these rows
-- instead of counting a table of millions (and leads needs no index on status).
DO $$
BEGIN
    IF to_regclass('lead_counts') IS NULL THEN
        CREATE TABLE lead_counts (
            tenant_id    text NOT NULL,
            campaign_id  text NOT NULL,
            status       text NOT NULL,
            n            bigint NOT NULL,
            PRIMARY KEY (tenant_id, campaign_id, status)
        );
        -- A database made before this table: counted once from its leads, which are held
        -- still (a projector writing meanwhile waits) so that no move is missed or doubled.
        LOCK TABLE leads IN SHARE MODE;
        INSERT INTO lead_counts
            SELECT tenant_id, campaign_id, status, count(*) FROM leads
            GROUP BY tenant_id, campaign_id, status;
    END IF;
END $$;

-- Keyed by lead, not by the event id alone: a lead's history and the projector's duplicate
-- check both read (lead_id, version, event_id), and one btree on random ids costs each event
-- one insertion instead of two. An event id is derived from its cause, so it comes with the
-- same lead and version every time: the key is as unique as the id.
CREATE TABLE IF NOT EXISTS lead_events (
    event_id        uuid NOT NULL,
    lead_id         uuid NOT NULL,
    type            text NOT NULL,
    version         integer NOT NULL,
    status          text NOT NULL,
    tenant_id       text NOT NULL,
    campaign_id     text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    correlation_id  uuid,
    causation_id    uuid,
    replay_id       text,
    topic           text NOT NULL,
    partition       integer NOT NULL,
    "offset"        bigint NOT NULL,
    -- The message exactly as it came off the log (the audit record). json keeps its bytes;
    -- jsonb would parse each one into a tree, half the Postgres CPU of this table's COPY, and
    -- nothing queries inside a payload.
    payload         json NOT NULL,
    PRIMARY KEY (lead_id, version, event_id)
);

-- Databases made with the primary key on event_id alone: re-keyed once (the new index is
-- built while the table is locked); read_model_indexes.sql drops the (lead_id, version)
-- index it replaces.
DO $$
BEGIN
    IF (SELECT array_agg(a.attname::text ORDER BY k.n)
        FROM pg_index i
        CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = 'lead_events'::regclass AND i.indisprimary) = ARRAY['event_id'] THEN
        ALTER TABLE lead_events DROP CONSTRAINT lead_events_pkey,
            ADD PRIMARY KEY (lead_id, version, event_id);
    END IF;
END $$;

-- Databases made while payload was jsonb: converted once (a rewrite of the table).
DO $$
BEGIN
    IF (SELECT data_type FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'lead_events'
          AND column_name = 'payload') = 'jsonb' THEN
        ALTER TABLE lead_events ALTER COLUMN payload TYPE json USING payload::json;
    END IF;
END $$;

-- One row per part of a run (an instance's share); job_runs is their fold.
CREATE TABLE IF NOT EXISTS job_run_parts (
    run_id            uuid NOT NULL,
    part              text NOT NULL,
    job               text NOT NULL,
    status            text NOT NULL,
    started_at        timestamptz,
    completed_at      timestamptz,
    leads_processed   integer NOT NULL DEFAULT 0,
    leads_succeeded   integer NOT NULL DEFAULT 0,
    leads_failed      integer NOT NULL DEFAULT 0,
    partitions        integer[] NOT NULL DEFAULT '{}',
    partitions_total  integer NOT NULL DEFAULT 0,
    backlog           bigint,
    reason            text,
    error             text,
    skipped_ticks     integer NOT NULL DEFAULT 0,  -- a reported streak of overlap skips
    cap               integer,                     -- the run's cap, as this part was given it
    leads_by_tenant   jsonb NOT NULL DEFAULT '{}', -- leads this part took per tenant
    failed_by_tenant  jsonb NOT NULL DEFAULT '{}', -- of which failed, per tenant
    failed_tenants    jsonb NOT NULL DEFAULT '[]', -- whom a failed part failed for ([]: all)
    PRIMARY KEY (run_id, part)
);
ALTER TABLE job_run_parts ADD COLUMN IF NOT EXISTS skipped_ticks integer NOT NULL DEFAULT 0;
ALTER TABLE job_run_parts ADD COLUMN IF NOT EXISTS cap integer;
ALTER TABLE job_run_parts ADD COLUMN IF NOT EXISTS leads_by_tenant jsonb NOT NULL DEFAULT '{}';
ALTER TABLE job_run_parts ADD COLUMN IF NOT EXISTS failed_by_tenant jsonb NOT NULL DEFAULT '{}';
ALTER TABLE job_run_parts ADD COLUMN IF NOT EXISTS failed_tenants jsonb NOT NULL DEFAULT '[]';

CREATE TABLE IF NOT EXISTS job_runs (
    run_id            uuid PRIMARY KEY,
    job               text NOT NULL,
    tenant_id         text NOT NULL,
    campaign_id       text,
    source            text NOT NULL,
    scheduled_for     timestamptz NOT NULL,
    requested_by      text,
    retry_of          uuid,
    attempt           integer NOT NULL DEFAULT 0,
    max_leads         integer,
    status            text NOT NULL,
    started_at        timestamptz,
    completed_at      timestamptz,
    duration_seconds  double precision,
    leads_processed   integer NOT NULL DEFAULT 0,
    leads_succeeded   integer NOT NULL DEFAULT 0,
    leads_failed      integer NOT NULL DEFAULT 0,
    parts             integer NOT NULL DEFAULT 0,
    partitions_total  integer NOT NULL DEFAULT 0,
    partitions_covered integer NOT NULL DEFAULT 0,
    backlog           bigint,
    reason            text,
    error             text,
    counted           boolean NOT NULL DEFAULT false,
    recorded_at       timestamptz NOT NULL,
    skipped_ticks     integer NOT NULL DEFAULT 0,  -- ticks a skipped row stands for
    -- The run's manifest, with tenant_id and campaign_id (its scope): the cap applied and
    -- the leads it took (and failed) per tenant, and whom a failure was for ([]: all).
    cap               integer,
    leads_by_tenant   jsonb NOT NULL DEFAULT '{}',
    failed_by_tenant  jsonb NOT NULL DEFAULT '{}',
    failed_tenants    jsonb NOT NULL DEFAULT '[]'
);
ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS skipped_ticks integer NOT NULL DEFAULT 0;
ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS cap integer;
ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS leads_by_tenant jsonb NOT NULL DEFAULT '{}';
ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS failed_by_tenant jsonb NOT NULL DEFAULT '{}';
ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS failed_tenants jsonb NOT NULL DEFAULT '[]';

-- Per job and tenant ('*' = all tenants): the seed dashboard's CronMetrics, kept as totals
-- so retention can prune job_runs without losing them.
CREATE TABLE IF NOT EXISTS job_metrics (
    job                      text NOT NULL,
    tenant_id                text NOT NULL,
    total_runs               integer NOT NULL DEFAULT 0,
    successful_runs          integer NOT NULL DEFAULT 0,
    failed_runs              integer NOT NULL DEFAULT 0,
    skipped_runs             integer NOT NULL DEFAULT 0,
    total_leads_processed    bigint NOT NULL DEFAULT 0,
    total_leads_succeeded    bigint NOT NULL DEFAULT 0,
    total_leads_failed       bigint NOT NULL DEFAULT 0,
    total_duration_seconds   double precision NOT NULL DEFAULT 0,
    consecutive_failures     integer NOT NULL DEFAULT 0,
    last_run_at              timestamptz,
    last_success_at          timestamptz,
    last_failure_at          timestamptz,
    PRIMARY KEY (job, tenant_id)
);

-- Per day (UTC), tenant and campaign: leads entering each status and rejections by reason.
CREATE TABLE IF NOT EXISTS pipeline_daily (
    day          date NOT NULL,
    tenant_id    text NOT NULL,
    campaign_id  text NOT NULL,
    metric       text NOT NULL,   -- 'entered:<STATUS>' or 'rejected:<reason>'
    count        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, tenant_id, campaign_id, metric)
);

CREATE TABLE IF NOT EXISTS dead_letters (
    event_id      uuid PRIMARY KEY,
    stage         text,
    lead_id       uuid,
    tenant_id     text NOT NULL,
    origin        text NOT NULL,
    original_type text,
    error_type    text NOT NULL,
    error         text NOT NULL,
    attempts      integer NOT NULL,
    recorded_at   timestamptz NOT NULL,
    payload       jsonb NOT NULL
);

-- One row per projector worker (id: 1 + its index; one projector alone is 1): how far behind
-- its share of the log it is. Read through projector_progress (for /readyz, /metrics).
CREATE TABLE IF NOT EXISTS projector_status (
    id              integer PRIMARY KEY DEFAULT 1,
    lag             bigint,
    events_applied  bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL
);
-- Schemas made when one projector wrote them allowed only id 1.
ALTER TABLE projector_status DROP CONSTRAINT IF EXISTS projector_status_id_check;
ALTER TABLE projector_status DROP CONSTRAINT IF EXISTS projector_status_worker_id;
ALTER TABLE projector_status ADD CONSTRAINT projector_status_worker_id CHECK (id >= 1);

-- The projector as one row however many workers report: the lag is the sum (unknown while any
-- worker's is), the report as old as the oldest worker's. No row before the first report.
CREATE OR REPLACE VIEW projector_progress AS
    SELECT CASE WHEN count(*) = count(lag) THEN sum(lag) END::bigint AS lag,
           sum(events_applied)::bigint AS events_applied, min(updated_at) AS updated_at
    FROM projector_status HAVING count(*) > 0;
