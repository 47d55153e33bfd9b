-- Two indexes of the send ledger that no query uses. Owner: services/contact/ledger.py.

-- Every ledger row is written three times (claimed, sent, published) and none of those writes
-- can be a HOT update (status and event_published_at are indexed), so each index costs three
-- insertions per send. Reads go by idempotency_key (the primary key), by campaign through
-- UNIQUE (campaign_id, lead_id, step), and by status through contact_ledger_status and
-- contact_ledger_unpublished; nothing reads by (lead_id, step) or (campaign_id, status).
DROP INDEX IF EXISTS contact_ledger_lead;
DROP INDEX IF EXISTS contact_ledger_campaign;
