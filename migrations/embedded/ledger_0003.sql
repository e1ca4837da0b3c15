-- Holds: HOLD_PLACED (money from a wallet's account to its held
-- sub-account, `held:<wallet id>`), HOLD_RELEASED (a void or an expiry, back)
-- and HOLD_CAPTURED (out of the held sub-account, the rest back).
-- SQLite cannot change a CHECK constraint, so the table is rebuilt with the
-- same rows; foreign keys are not enforced on these files, and
-- ledger_entries' reference names the table, which exists again at the end.
CREATE TABLE ledger_transactions_next (
    transaction_id   TEXT    PRIMARY KEY,              -- the event id
    position         INTEGER NOT NULL UNIQUE,          -- the event's global log position: ledger order
    reference_id     TEXT    NOT NULL,                 -- transfer id, or the event id
    transaction_type TEXT    NOT NULL CHECK (transaction_type IN
                         ('WALLET_CREATED', 'CREDIT', 'DEBIT', 'TRANSFER_OUT', 'TRANSFER_IN',
                          'WALLET_UPDATED', 'HOLD_PLACED', 'HOLD_RELEASED', 'HOLD_CAPTURED')),
    wallet_id        TEXT    NOT NULL,
    occurred_at_us   INTEGER NOT NULL,                 -- microseconds since the Unix epoch
    description      TEXT    NOT NULL
) WITHOUT ROWID;

INSERT INTO ledger_transactions_next
    SELECT transaction_id, position, reference_id, transaction_type, wallet_id, occurred_at_us, description
    FROM ledger_transactions;
DROP TABLE ledger_transactions;
ALTER TABLE ledger_transactions_next RENAME TO ledger_transactions;

CREATE INDEX ledger_transactions_by_reference ON ledger_transactions (reference_id);
CREATE INDEX ledger_transactions_by_wallet ON ledger_transactions (wallet_id, position);
CREATE INDEX ledger_transactions_by_time ON ledger_transactions (occurred_at_us);
