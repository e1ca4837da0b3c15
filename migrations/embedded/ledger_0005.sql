-- A transaction's wallet and the accounts of its entries are words of a
-- full-text table instead of B-tree indexes (issue 13: bytes written per
-- operation), as the search index's identifiers are (search_index_0006.sql;
-- why, in `crates/embedded-sqlite/src/identifier_words.rs`).
--
-- Words, one per identifier, rowid = the transaction's position:
--   w || hex(wallet_id): the wallet the transaction is about;
--   a || hex(account):   each account its entries post to.
-- The account index was keyed by account and the wallet index by wallet: each
-- event put a key on a page of its own in both. The reference index stays: a
-- reference is a transfer id or an event id, both UUIDv7, so its keys arrive
-- in order.
CREATE VIRTUAL TABLE ledger_keys USING fts5 (
    keys,
    content = '',
    detail = none,
    columnsize = 0,
    tokenize = 'ascii'
);

INSERT INTO ledger_keys (rowid, keys)
SELECT t.position,
       'w' || lower(hex(t.wallet_id))
       || coalesce((SELECT ' ' || group_concat('a' || lower(hex(account)), ' ')
                    FROM (SELECT DISTINCT account FROM ledger_entries e
                          WHERE e.position = t.position)), '')
FROM ledger_transactions t;

DROP INDEX ledger_transactions_by_wallet;
DROP INDEX ledger_entries_by_account;
