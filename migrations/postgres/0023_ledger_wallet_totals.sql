-- A wallet's totals through one of its transactions (crates/ledger/src/totals.rs),
-- written by the summaries that sum past the newest: one row per 500 of a
-- wallet's transactions, so a summary now or as of a moment sums at most
-- about that many (issue 13). A cache of the entries; deleting every row
-- is safe (a rebuild truncates it with the ledger).
CREATE TABLE ledger_wallet_totals (
    wallet_id   TEXT        NOT NULL,
    position    BIGINT      NOT NULL,   -- the wallet's last transaction counted
    occurred_at TIMESTAMPTZ NOT NULL,   -- its time
    credits     NUMERIC     NOT NULL,
    debits      NUMERIC     NOT NULL,
    entry_count BIGINT      NOT NULL CHECK (entry_count >= 0),
    CONSTRAINT ledger_wallet_totals_pkey PRIMARY KEY (wallet_id, position)
);
