-- Contact: the send ledger. A row is claimed before the send; its key makes a second send of
-- the same step impossible. Owner: services/contact/ledger.py.
--   pending  claimed once, nothing in flight, nothing sent (held back, or a transient failure)
--   claimed  a send is in flight (claim_token names the process); found after a crash, it is
--            reconciled, never blindly repeated
--   sent     delivered (or recorded, in proof mode)
--   failed   given up for good; ``error`` says why (permanent error, retries spent, outcome unknown)
CREATE TABLE IF NOT EXISTS contact_ledger (
    idempotency_key     text PRIMARY KEY,          -- campaign:lead:step
    tenant_id           text NOT NULL,
    campaign_id         text NOT NULL,
    lead_id             uuid NOT NULL,
    step                integer NOT NULL CHECK (step >= 1),
    sequence_id         text NOT NULL,
    status              text NOT NULL CHECK (status IN ('pending', 'claimed', 'sent', 'failed')),
    sender              text NOT NULL,
    email               text NOT NULL,
    subject             text,
    message_id          text,                      -- our Message-ID header, fixed at claim time
    provider_id         text,                      -- what the sender answered
    run_id              uuid,
    cause_event_id      uuid NOT NULL,
    decided_at          timestamptz,               -- decision time (tick) of the claiming run
    claimed_by          text,                      -- instance id
    claim_token         uuid,                      -- process incarnation holding the claim
    attempts            integer NOT NULL DEFAULT 0,
    error               text,
    resolution          text,                      -- how a claim found after a crash was settled
    claimed_at          timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz,
    failed_at           timestamptz,
    event_published_at  timestamptz,
    UNIQUE (campaign_id, lead_id, step)
);
CREATE INDEX IF NOT EXISTS contact_ledger_lead ON contact_ledger (lead_id, step);
CREATE INDEX IF NOT EXISTS contact_ledger_status ON contact_ledger (status) WHERE status <> 'sent';
CREATE INDEX IF NOT EXISTS contact_ledger_campaign ON contact_ledger (campaign_id, status);
CREATE INDEX IF NOT EXISTS contact_ledger_unpublished ON contact_ledger (sent_at)
    WHERE status = 'sent' AND event_published_at IS NULL;
