-- Harvest: which leads it has already emitted, so a second import of a file adds nothing.
-- Owner: services/harvest/seen.py.
CREATE TABLE IF NOT EXISTS harvest_seen (
    lead_id      uuid PRIMARY KEY,
    tenant_id    text NOT NULL,
    source       text NOT NULL,
    first_seen   timestamptz NOT NULL DEFAULT now()
);

-- Bad rows already reported (by source, line and content), so a re-read does not re-report.
CREATE TABLE IF NOT EXISTS harvest_rejects (
    source       text NOT NULL,
    line         integer NOT NULL,
    row_hash     text NOT NULL,
    reason       text NOT NULL,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, line, row_hash)
);
