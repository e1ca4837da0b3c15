-- A wallet's totals through one of its transactions (crates/ledger/src/totals.rs),
-- written by the summaries that sum past the newest: one row per 500 of a
-- wallet's transactions, so a summary now or as of a moment sums at most
-- about that many (issue 13). A cache of the entries; deleting every row
-- is safe. Money as exact decimal strings, as in ledger_entries.
CREATE TABLE ledger_wallet_totals (
    wallet_id      TEXT    NOT NULL,
    position       INTEGER NOT NULL,    -- the wallet's last transaction counted
    occurred_at_us INTEGER NOT NULL,    -- its time, microseconds since the Unix epoch
    credits        TEXT    NOT NULL,
    debits         TEXT    NOT NULL,
    entry_count    INTEGER NOT NULL CHECK (entry_count >= 0),
    PRIMARY KEY (wallet_id, position)
) WITHOUT ROWID;
