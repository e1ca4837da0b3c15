-- The double-entry ledger of the distributed mode (ledger-consumer).
-- Amounts are NUMERIC: exact, with the scale they were posted at, so sums may
-- be taken in SQL.

-- One transaction per posted event.
CREATE TABLE ledger_transactions (
    transaction_id   UUID        PRIMARY KEY,                 -- the event id
    position         BIGINT      NOT NULL UNIQUE CHECK (position >= 0), -- global log position: ledger order
    reference_id     UUID        NOT NULL,                    -- transfer id, or the event id
    transaction_type TEXT        NOT NULL CHECK (transaction_type IN
                         ('WALLET_CREATED', 'CREDIT', 'DEBIT', 'TRANSFER_OUT', 'TRANSFER_IN')),
    wallet_id        TEXT        NOT NULL,
    occurred_at      TIMESTAMPTZ NOT NULL,
    description      TEXT        NOT NULL
);

CREATE INDEX ledger_transactions_by_reference ON ledger_transactions (reference_id);
CREATE INDEX ledger_transactions_by_wallet ON ledger_transactions (wallet_id, position);
CREATE INDEX ledger_transactions_by_time ON ledger_transactions (occurred_at);

-- The entries of each transaction; they sum to zero per transaction.
-- `position` repeats the transaction's so one account's entries are read in
-- ledger order from one index.
CREATE TABLE ledger_entries (
    transaction_id UUID    NOT NULL REFERENCES ledger_transactions (transaction_id),
    line           INTEGER NOT NULL CHECK (line >= 1),
    account        TEXT    NOT NULL,
    amount         NUMERIC NOT NULL CHECK (amount <> 0),
    position       BIGINT  NOT NULL,
    PRIMARY KEY (transaction_id, line)
);

CREATE INDEX ledger_entries_by_account ON ledger_entries (account, position, line);
CREATE INDEX ledger_entries_by_position ON ledger_entries (position, line);

-- Events already posted, written in the same transaction as their entries:
-- inserted with ON CONFLICT DO NOTHING, only the newly inserted are posted.
CREATE TABLE ledger_processed_events (
    event_id UUID   PRIMARY KEY,
    position BIGINT NOT NULL
);

-- Position of the last event of the log the ledger has durably taken.
CREATE TABLE ledger_checkpoint (
    id       SMALLINT PRIMARY KEY CHECK (id = 1),
    position BIGINT   NOT NULL CHECK (position >= 0)
);
INSERT INTO ledger_checkpoint (id, position) VALUES (1, 0);
