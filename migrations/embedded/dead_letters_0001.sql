-- The in-process relays' dead letters (dead_letters.db): the events a sink
-- refused for good, parked so that the sink goes on, kept until a replay
-- (`command-api replay-dead-letters`) hands them to the sink again.

-- One row per parked event and sink. `wallet_id` is '' when the payload does
-- not even name its wallet; `payload` is the event's JSON as stored, so a
-- replay needs nothing but this row.
CREATE TABLE dead_letters (
    sink           TEXT    NOT NULL,
    position       INTEGER NOT NULL CHECK (position >= 1),
    stream_version INTEGER NOT NULL,
    wallet_id      TEXT    NOT NULL,
    event_type     TEXT    NOT NULL,
    payload        TEXT    NOT NULL,
    error          TEXT    NOT NULL,  -- the refusal's error chain
    parked_at      TEXT    NOT NULL,  -- RFC 3339, UTC
    PRIMARY KEY (sink, position)
) WITHOUT ROWID;

-- The wallets a sink has parked events of: every later event of theirs is
-- parked behind them.
CREATE INDEX dead_letters_by_wallet ON dead_letters (sink, wallet_id);

-- Per sink: the furthest position ever parked (the relay reads on from the
-- greater of it and the sink's own checkpoint, since a parked event does not
-- move the sink's checkpoint) and how many events were ever parked.
CREATE TABLE dead_letter_marks (
    sink         TEXT    PRIMARY KEY,
    position     INTEGER NOT NULL,
    parked_total INTEGER NOT NULL
) WITHOUT ROWID;
