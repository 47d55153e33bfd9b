-- Route: round-robin owner assignment that a replay reproduces. Owner: services/route/assignments.py.
CREATE TABLE IF NOT EXISTS route_assignments (
    lead_id      uuid PRIMARY KEY,
    tenant_id    text NOT NULL,
    segment      text NOT NULL,
    seq          bigint NOT NULL,
    owner        text NOT NULL,
    assigned_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS route_counters (
    tenant_id    text NOT NULL,
    segment      text NOT NULL,
    next_seq     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, segment)
);
