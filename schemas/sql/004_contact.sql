-- Contact: the send ledger. A row is claimed before the send; its key makes a second send of
-- the same step impossible. Owner: services/contact/ledger.py.
CREATE TABLE IF NOT EXISTS contact_ledger (
    idempotency_key     text PRIMARY KEY,          -- campaign:lead:step
    tenant_id           text NOT NULL,
    campaign_id         text NOT NULL,
    lead_id             uuid NOT NULL,
    step                integer NOT NULL CHECK (step >= 1),
    sequence_id         text NOT NULL,
    status              text NOT NULL CHECK (status IN ('claimed', 'sent', 'failed')),
    sender              text NOT NULL,
    email               text NOT NULL,
    subject             text,
    run_id              uuid,
    cause_event_id      uuid NOT NULL,
    attempts            integer NOT NULL DEFAULT 0,
    error               text,
    claimed_at          timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz,
    event_published_at  timestamptz,
    UNIQUE (campaign_id, lead_id, step)
);
CREATE INDEX IF NOT EXISTS contact_ledger_lead ON contact_ledger (lead_id, step);
CREATE INDEX IF NOT EXISTS contact_ledger_status ON contact_ledger (status) WHERE status <> 'sent';
