-- The built-in notifier's incidents and what each destination was told (`leadflow run alerts`,
-- docs/alerts.md). Owner: services/alerts/store.py. An incident opens when a rule's condition
-- first holds for a subject (a job, a stage, the projector), fires once it has held for the
-- rule's `sustained`, and resolves once when the condition clears. At most one open incident
-- per rule and subject, kept here so a restarted notifier continues it instead of firing again.
CREATE TABLE IF NOT EXISTS alert_incidents (
    incident_id       uuid PRIMARY KEY,
    rule              text NOT NULL,
    subject           text NOT NULL,
    severity          text NOT NULL,
    since             timestamptz NOT NULL,    -- the poll that first saw the condition
    fired_at          timestamptz,             -- NULL while it has held for less than `sustained`
    resolved_at       timestamptz,             -- NULL while open
    value             double precision,
    summary           text NOT NULL,           -- the rule's words when it fired
    resolved_summary  text
);
CREATE UNIQUE INDEX IF NOT EXISTS alert_incidents_open ON alert_incidents (rule, subject)
    WHERE resolved_at IS NULL;
CREATE INDEX IF NOT EXISTS alert_incidents_resolved ON alert_incidents (resolved_at)
    WHERE resolved_at IS NOT NULL;

-- One row per incident, kind and destination ('webhook' or 'email:<address>'): a fire goes to
-- the rule's destinations, a resolve to those the fire reached. Pending rows are retried with
-- backoff; `abandoned` ones were refused for good or outlived their incident.
CREATE TABLE IF NOT EXISTS alert_deliveries (
    incident_id  uuid NOT NULL REFERENCES alert_incidents (incident_id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('fire', 'resolve')),
    destination  text NOT NULL,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'abandoned')),
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    sent_at      timestamptz,
    PRIMARY KEY (incident_id, kind, destination)
);
CREATE INDEX IF NOT EXISTS alert_deliveries_pending ON alert_deliveries (incident_id)
    WHERE status = 'pending';
