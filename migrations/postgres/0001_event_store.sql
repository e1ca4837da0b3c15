-- The event log of the distributed mode. The table is also the outbox: relays
-- read it in `position` order and must never skip an event that commits late.
--
-- Positions come from one sequence, and every append transaction takes the
-- allocator's advisory lock (see crates/event-store/src/postgres.rs) before it
-- calls nextval, so positions become visible in commit order. A position whose
-- append rolled back is a hole that nothing will ever fill; readers step over it.
CREATE SEQUENCE event_positions AS BIGINT START WITH 1 NO CYCLE;

CREATE TABLE events (
    position     BIGINT      NOT NULL,
    event_id     UUID        NOT NULL,
    stream_id    TEXT        NOT NULL,
    version      BIGINT      NOT NULL,
    event_type   TEXT        NOT NULL,
    -- The event's JSON exactly as `WalletEvent::to_json` wrote it: TEXT keeps
    -- every byte (digits, key order), and nothing here queries inside it.
    payload      TEXT        NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT events_pkey PRIMARY KEY (position),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    -- Also the index of read_stream: (stream_id, version > n) ORDER BY version.
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version),
    CONSTRAINT events_version_positive CHECK (version >= 1),
    CONSTRAINT events_position_positive CHECK (position >= 1)
);

-- Responses of POSTs that carried an Idempotency-Key, written in the same
-- transaction as the events they produced.
CREATE TABLE idempotency_keys (
    idempotency_key     TEXT        NOT NULL,
    request_fingerprint TEXT        NOT NULL,
    response_status     INTEGER     NOT NULL,
    response_body       TEXT        NOT NULL,
    recorded_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (idempotency_key)
);
