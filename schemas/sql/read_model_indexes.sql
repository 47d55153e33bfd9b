-- Secondary indexes of the read models (read_models.sql). Kept apart so that a rebuild can
-- bulk-load its shadow schema first and index it once at the end, before the swap.
-- leads has no index on status: every event changes it, and an indexed column makes each of
-- a lead's five writes a new index entry in every index instead of a HOT update. Counts per
-- status come from lead_counts; a list filtered by status scans, as most statuses would.
DROP INDEX IF EXISTS leads_status;
DROP INDEX IF EXISTS leads_campaign_status;
-- The leads list matches emails by ILIKE substring, which no btree serves; the index only
-- cost every projector write of a lead an insertion. Dropped where an older schema made it.
DROP INDEX IF EXISTS leads_email;
-- A lead's history is read through lead_events' primary key (lead_id, version, event_id).
DROP INDEX IF EXISTS lead_events_lead;
-- Only retention reads lead_events by age (a range delete), and rows arrive close to
-- recorded_at order: a BRIN summary serves it, where a btree cost every event an insertion.
DROP INDEX IF EXISTS lead_events_recorded;
CREATE INDEX IF NOT EXISTS lead_events_recorded_brin ON lead_events USING brin (recorded_at)
    WITH (autosummarize = on);
CREATE INDEX IF NOT EXISTS job_runs_job_started ON job_runs (job, started_at DESC);
CREATE INDEX IF NOT EXISTS job_runs_recorded ON job_runs (recorded_at DESC);
CREATE INDEX IF NOT EXISTS job_runs_scheduled ON job_runs (job, scheduled_for);
CREATE INDEX IF NOT EXISTS dead_letters_recorded ON dead_letters (recorded_at DESC);
