-- Fewer and more sequential B-trees per posted event (issue 13: bytes
-- written per operation). Each insert into a B-tree keyed by something
-- random dirties a page of its own, written whole to the WAL at commit and
-- again at the checkpoint; keys that grow with the log append to the last page.
--
-- - ledger_transactions is clustered by its log position (the rowid, always
--   growing) instead of by its id, which stays unique through an index.
-- - ledger_entries is keyed by (position, line): an entry no longer repeats
--   its transaction's 36-character id, and the separate index by position,
--   which the key now is, goes.
-- - ledger_processed_events goes: every posted event is one transaction row
--   keyed by the event id, so that key is what deduplicates a redelivery.
--
-- Existing rows are copied, and each table exists again under its name at
-- the end. The connection enforces foreign keys, so the new entries table
-- declares none (it is written only in the transaction of its transaction
-- row): the old tables can then be dropped child first, with no row left
-- referring to them.
CREATE TABLE ledger_transactions_next (
    position         INTEGER PRIMARY KEY,              -- the event's global log position: ledger order
    transaction_id   TEXT    NOT NULL UNIQUE,          -- the event id
    reference_id     TEXT    NOT NULL,                 -- transfer id, or the event id
    transaction_type TEXT    NOT NULL CHECK (transaction_type IN
                         ('WALLET_CREATED', 'CREDIT', 'DEBIT', 'TRANSFER_OUT', 'TRANSFER_IN',
                          'WALLET_UPDATED', 'HOLD_PLACED', 'HOLD_RELEASED', 'HOLD_CAPTURED')),
    wallet_id        TEXT    NOT NULL,
    occurred_at_us   INTEGER NOT NULL,                 -- microseconds since the Unix epoch
    description      TEXT    NOT NULL
);

INSERT INTO ledger_transactions_next
    (position, transaction_id, reference_id, transaction_type, wallet_id, occurred_at_us, description)
    SELECT position, transaction_id, reference_id, transaction_type, wallet_id, occurred_at_us, description
    FROM ledger_transactions ORDER BY position;

-- The entries of each transaction (they sum to zero per transaction), in
-- ledger order.
CREATE TABLE ledger_entries_next (
    position INTEGER NOT NULL,                -- its transaction's
    line     INTEGER NOT NULL CHECK (line >= 1),
    account  TEXT    NOT NULL,
    amount   TEXT    NOT NULL,
    PRIMARY KEY (position, line)
) WITHOUT ROWID;

INSERT INTO ledger_entries_next (position, line, account, amount)
    SELECT position, line, account, amount FROM ledger_entries ORDER BY position, line;
DROP TABLE ledger_entries;
DROP TABLE ledger_transactions;
ALTER TABLE ledger_transactions_next RENAME TO ledger_transactions;
ALTER TABLE ledger_entries_next RENAME TO ledger_entries;

-- Each index also holds the rowid (the position): a wallet's transactions
-- come in ledger order from (wallet_id) alone.
CREATE INDEX ledger_transactions_by_reference ON ledger_transactions (reference_id);
CREATE INDEX ledger_transactions_by_wallet ON ledger_transactions (wallet_id);
CREATE INDEX ledger_transactions_by_time ON ledger_transactions (occurred_at_us);

-- The key (position, line) follows the account in this index: one account's
-- entries in ledger order.
CREATE INDEX ledger_entries_by_account ON ledger_entries (account);

DROP TABLE ledger_processed_events;
