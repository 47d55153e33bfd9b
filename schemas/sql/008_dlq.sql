-- Dead letters put back on their topic by `leadflow dlq replay` (docs/reliability.md). Owner:
-- services/dlq/store.py. One row per letter: a second replay of the same letter is skipped.
CREATE TABLE IF NOT EXISTS dlq_replays (
    event_id      uuid PRIMARY KEY,                 -- the dead letter's id
    topic         text NOT NULL,                    -- where its original went back to
    replayed_at   timestamptz NOT NULL DEFAULT now(),
    requested_by  text
);
