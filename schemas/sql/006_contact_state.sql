-- Contact: outreach progress per lead, operator controls, and send-limit counters.

-- Each routed lead's progress through its sequence. ``last_event`` is the last lead event the
-- contact stage knows (LeadRouted or LeadContacted, encoded), so the next LeadContacted can be
-- built from it. Owner: services/contact/progress.py.
CREATE TABLE IF NOT EXISTS contact_leads (
    lead_id         uuid PRIMARY KEY,
    tenant_id       text NOT NULL,
    campaign_id     text NOT NULL,
    sequence_id     text NOT NULL,
    email           text NOT NULL,
    last_event      text NOT NULL,
    step            integer NOT NULL DEFAULT 0,    -- last step sent (0: none yet)
    state           text NOT NULL DEFAULT 'active'
                    CHECK (state IN ('active', 'completed', 'stopped', 'failed')),
    next_action_at  timestamptz,                   -- next step or retry due (active only)
    hold_reason     text,                          -- why the last due attempt waited
    stopped_reason  text,
    last_error      text,
    last_run_id     uuid,                          -- the last run that looked at the lead
    enrolled_at     timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- The leads.routed partition a lead came from: its owner runs the lead's follow-ups.
ALTER TABLE contact_leads ADD COLUMN IF NOT EXISTS source_partition integer;
CREATE INDEX IF NOT EXISTS contact_leads_due ON contact_leads (next_action_at, lead_id)
    WHERE state = 'active';
CREATE INDEX IF NOT EXISTS contact_leads_campaign ON contact_leads (campaign_id, state);

-- Control state, folded from the control topic by the contact service's control feed only.
-- tenant_id '*' applies to every tenant. Owner: services/contact/controls.py.
CREATE TABLE IF NOT EXISTS contact_control_offsets (
    topic        text NOT NULL,
    partition    integer NOT NULL,
    next_offset  bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);

CREATE TABLE IF NOT EXISTS contact_pauses (
    tenant_id     text NOT NULL,
    campaign_id   text NOT NULL,
    paused        boolean NOT NULL,
    reason        text,
    requested_by  text,
    changed_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, campaign_id)
);

CREATE TABLE IF NOT EXISTS contact_kill_switches (
    tenant_id     text PRIMARY KEY,
    engaged       boolean NOT NULL,
    reason        text,
    requested_by  text,
    changed_at    timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS contact_suppressions (
    tenant_id     text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('email', 'domain')),
    value         text NOT NULL,                   -- lower-case email or domain
    reason        text,
    requested_by  text,
    added_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, kind, value)
);

CREATE TABLE IF NOT EXISTS contact_unsubscribes (
    tenant_id        text NOT NULL,
    email            text NOT NULL,                -- lower-case
    lead_id          uuid,
    unsubscribed_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, email)
);

CREATE TABLE IF NOT EXISTS contact_replies (
    lead_id     uuid PRIMARY KEY,
    tenant_id   text NOT NULL,
    replied_at  timestamptz NOT NULL
);

-- Sends counted against quotas and rate limits, per scope and period; reserved atomically
-- before a send. Owner: services/contact/usage.py.
CREATE TABLE IF NOT EXISTS contact_usage (
    scope         text NOT NULL,                   -- 'campaign:t:c', 'tenant:t', 'domain:d'
    period_start  timestamptz NOT NULL,
    used          integer NOT NULL CHECK (used >= 0),
    PRIMARY KEY (scope, period_start)
);
