-- The wallets a Kafka consumer's handler has dead letters of (see
-- crates/event-bus/src/parked.rs): every later event of such a wallet is
-- parked on the dead-letter topic behind them, so a replay re-applies the
-- wallet's events in order and the handler never sees a version gap.
CREATE TABLE bus_parked_wallets (
    handler   TEXT    NOT NULL,
    wallet_id TEXT    NOT NULL,
    -- Dead letters of this wallet not yet re-applied; the row goes at 0.
    letters   BIGINT  NOT NULL,
    -- A replayed letter was refused again: the rest of the replay parks
    -- this wallet's letters again, untouched (reset when a replay starts).
    stalled   BOOLEAN NOT NULL DEFAULT false,
    parked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT bus_parked_wallets_pkey PRIMARY KEY (handler, wallet_id),
    CONSTRAINT bus_parked_wallets_letters_positive CHECK (letters >= 1)
);
