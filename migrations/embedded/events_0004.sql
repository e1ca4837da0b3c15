-- The newest snapshot of each wallet stream (see crates/event-store/src/tail.rs):
-- a load reads it and the events after it, not the whole stream. A cache of
-- the events, checked against them on every read; deleting every row is safe.
CREATE TABLE snapshots (
    stream_id      TEXT    PRIMARY KEY,
    version        INTEGER NOT NULL CHECK (version >= 1),
    last_event_id  TEXT    NOT NULL,
    state          TEXT    NOT NULL
) WITHOUT ROWID;
