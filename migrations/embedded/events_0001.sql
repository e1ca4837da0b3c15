-- Event log of the embedded default. The table is also the outbox: relays
-- read it in `position` order. One writer appends, so positions commit in order.
CREATE TABLE events (
    position     INTEGER PRIMARY KEY,
    event_id     TEXT    NOT NULL UNIQUE,
    stream_id    TEXT    NOT NULL,
    version      INTEGER NOT NULL CHECK (version >= 1),
    event_type   TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    recorded_at  TEXT    NOT NULL,
    UNIQUE (stream_id, version)
);

-- Responses of POSTs that carried an Idempotency-Key, written in the same
-- transaction as the events they produced.
CREATE TABLE idempotency_keys (
    idempotency_key     TEXT    PRIMARY KEY,
    request_fingerprint TEXT    NOT NULL,
    response_status     INTEGER NOT NULL,
    response_body       TEXT    NOT NULL,
    recorded_at         TEXT    NOT NULL
);
