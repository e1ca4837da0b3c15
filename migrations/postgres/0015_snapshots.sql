-- The newest snapshot of each wallet stream (see crates/event-store/src/tail.rs):
-- a load reads it and the events after it, not the whole stream. A cache of
-- the events, checked against them on every read; deleting every row is safe.
CREATE TABLE snapshots (
    stream_id      TEXT   NOT NULL,
    version        BIGINT NOT NULL,
    last_event_id  UUID   NOT NULL,
    state          TEXT   NOT NULL,
    CONSTRAINT snapshots_pkey PRIMARY KEY (stream_id),
    CONSTRAINT snapshots_version_positive CHECK (version >= 1)
);
