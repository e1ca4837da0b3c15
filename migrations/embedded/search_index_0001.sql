-- Search index of the embedded default, in its own file (search_index.db):
-- the same documents as the Elasticsearch indices, as tables.
-- Amounts are exact decimal text (what is returned) plus whole cents (what
-- range filters compare); no float ever holds money.

-- One row per event; the event id is the document id, so a redelivered event
-- overwrites its own row. `position` (the global log position) is the rowid:
-- results are ordered by it, newest first.
CREATE TABLE search_transactions (
    position               INTEGER PRIMARY KEY,
    event_id               TEXT    NOT NULL UNIQUE,
    wallet_id              TEXT    NOT NULL,
    owner_id               TEXT    NOT NULL,
    transaction_type       TEXT    NOT NULL,
    amount                 TEXT    NOT NULL,
    amount_cents           INTEGER NOT NULL,
    balance_after          TEXT    NOT NULL,
    counterparty_wallet_id TEXT,
    transfer_id            TEXT,
    description            TEXT,
    occurred_at            TEXT    NOT NULL,   -- RFC 3339, full precision: what is returned
    occurred_at_ms         INTEGER NOT NULL,   -- milliseconds since the epoch: what date filters compare, as Elasticsearch's `date` does
    stream_version         INTEGER NOT NULL
);

CREATE INDEX search_transactions_by_wallet ON search_transactions (wallet_id, position);
CREATE INDEX search_transactions_by_owner ON search_transactions (owner_id, position);
CREATE INDEX search_transactions_by_time ON search_transactions (occurred_at_ms);
CREATE INDEX search_transactions_by_amount ON search_transactions (amount_cents);
CREATE INDEX search_transactions_by_counterparty ON search_transactions (counterparty_wallet_id);
CREATE INDEX search_transactions_by_transfer ON search_transactions (transfer_id);

-- Words of each description, rowid = the transaction's position. Unicode
-- words, case-folded, accents kept: close to Elasticsearch's standard analyzer.
CREATE VIRTUAL TABLE search_descriptions USING fts5 (
    description,
    tokenize = 'unicode61 remove_diacritics 0'
);

-- One row per wallet: its state after the newest event applied to it. A row
-- only moves to a greater version (Elasticsearch's external versioning).
CREATE TABLE search_wallets (
    wallet_id  TEXT    PRIMARY KEY,
    owner_id   TEXT    NOT NULL,
    balance    TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1)
) WITHOUT ROWID;

-- Position of the last event of the log the index has durably taken.
CREATE TABLE search_checkpoint (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL CHECK (position >= 0)
);
INSERT INTO search_checkpoint (id, position) VALUES (1, 0);
