-- Wallets as the list endpoints see them, projected from the event log.
CREATE TABLE wallets (
    wallet_id  TEXT    PRIMARY KEY,
    owner_id   TEXT    NOT NULL,
    balance    TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    version    INTEGER NOT NULL
);
CREATE INDEX wallets_by_owner ON wallets (owner_id, wallet_id);

-- Global position of the last event projected, written with the projection.
CREATE TABLE projection_checkpoint (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL
);
