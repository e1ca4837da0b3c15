-- Double-entry ledger of the embedded default, in its own file (ledger.db).
-- Amounts are exact decimal strings ('-150.00'): SQLite has no exact decimal
-- type, so sums are computed in Rust, never in SQL.

-- One transaction per posted event.
CREATE TABLE ledger_transactions (
    transaction_id   TEXT    PRIMARY KEY,              -- the event id
    position         INTEGER NOT NULL UNIQUE,          -- the event's global log position: ledger order
    reference_id     TEXT    NOT NULL,                 -- transfer id, or the event id
    transaction_type TEXT    NOT NULL CHECK (transaction_type IN
                         ('WALLET_CREATED', 'CREDIT', 'DEBIT', 'TRANSFER_OUT', 'TRANSFER_IN')),
    wallet_id        TEXT    NOT NULL,
    occurred_at_us   INTEGER NOT NULL,                 -- microseconds since the Unix epoch
    description      TEXT    NOT NULL
) WITHOUT ROWID;

CREATE INDEX ledger_transactions_by_reference ON ledger_transactions (reference_id);
CREATE INDEX ledger_transactions_by_wallet ON ledger_transactions (wallet_id, position);
CREATE INDEX ledger_transactions_by_time ON ledger_transactions (occurred_at_us);

-- The entries of each transaction; they sum to zero per transaction.
-- `position` repeats the transaction's so one account's entries are read in
-- ledger order from one index.
CREATE TABLE ledger_entries (
    transaction_id TEXT    NOT NULL REFERENCES ledger_transactions (transaction_id),
    line           INTEGER NOT NULL CHECK (line >= 1),
    account        TEXT    NOT NULL,
    amount         TEXT    NOT NULL,
    position       INTEGER NOT NULL,
    PRIMARY KEY (transaction_id, line)
) WITHOUT ROWID;

CREATE INDEX ledger_entries_by_account ON ledger_entries (account, position, line);
CREATE INDEX ledger_entries_by_position ON ledger_entries (position, line);

-- Events already posted, written in the same transaction as their entries.
CREATE TABLE ledger_processed_events (
    event_id TEXT    PRIMARY KEY,
    position INTEGER NOT NULL
) WITHOUT ROWID;

-- Position of the last event of the log the ledger has durably taken.
CREATE TABLE ledger_checkpoint (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL CHECK (position >= 0)
);
INSERT INTO ledger_checkpoint (id, position) VALUES (1, 0);
