-- Contact: recorded sends whose LeadContacted may not be in the log yet, one row per control
-- window. Owner: services/contact/ledger.py.

-- The statement that marks a window's sends 'sent' writes its row; the transaction that moves
-- those leads' progress, once the broker has acknowledged their LeadContacted, deletes it. A
-- send's ledger row is then written twice (claimed, sent) instead of three times (a
-- published mark, which no index let be a HOT update), and recovery reads the few windows a
-- process now gone left behind instead of an index entry per send.
CREATE TABLE IF NOT EXISTS contact_windows (
    window_id    uuid PRIMARY KEY,
    claimed_by   text,                            -- the instance that recorded the sends
    claim_token  uuid,                            -- its process incarnation
    sent_at      timestamptz NOT NULL DEFAULT now(),
    keys         text[] NOT NULL                  -- contact_ledger.idempotency_key, all 'sent'
);

-- Sends recorded before this table and never marked published: recovery finds them here now.
-- (Once: the index goes with it. event_published_at stays for the rows that have it.)
DO $$
BEGIN
    IF to_regclass('contact_ledger_unpublished') IS NOT NULL THEN
        INSERT INTO contact_windows (window_id, claimed_by, claim_token, sent_at, keys)
        SELECT gen_random_uuid(), claimed_by, claim_token, COALESCE(min(sent_at), now()),
               array_agg(idempotency_key)
        FROM contact_ledger
        WHERE status = 'sent' AND event_published_at IS NULL
        GROUP BY claimed_by, claim_token;
        DROP INDEX contact_ledger_unpublished;
    END IF;
END $$;
