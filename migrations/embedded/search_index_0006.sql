-- The identifiers a transaction is found by (its wallet, its owner, its
-- counterparty, its transfer, its hold) are words of a full-text table
-- instead of B-tree indexes (issue 13: bytes written per operation).
--
-- A B-tree ordered by wallet puts each event's key on that wallet's page: with
-- the events spread over many wallets, every event dirtied a page of its own
-- in each such index, written whole to the WAL and again at the checkpoint.
-- FTS5 keeps its words log-structured: each commit appends one new segment
-- holding every word of the batch, and segments are merged in the background
-- as they accumulate, so a batch writes a few pages in order whatever wallets
-- it touches. A wallet's transactions are still read newest first without a
-- sort: FTS5 returns the rows of a word in rowid (position) order, either way.
--
-- One word per identifier: a one-letter kind, then the identifier's UTF-8
-- bytes in lower-case hexadecimal, so any identifier is one word of letters
-- and digits that no tokenizer splits and no query reads as syntax:
--   w = wallet, o = owner, c = counterparty wallet, t = transfer, h = hold.
-- `crates/search-index/src/embedded/keys.rs` makes the same words
-- (`embedded_sqlite::identifier_word`).
-- Contentless (the identifiers are in search_transactions), no positions or
-- sizes kept (only "which rows hold this word" is ever asked). The rowid is
-- the transaction's position; a row's words are written once, with the row.
CREATE VIRTUAL TABLE search_keys USING fts5 (
    keys,
    content = '',
    detail = none,
    columnsize = 0,
    tokenize = 'ascii'
);

INSERT INTO search_keys (rowid, keys)
SELECT position,
       'w' || lower(hex(wallet_id))
       || ' o' || lower(hex(owner_id))
       || coalesce(' c' || lower(hex(counterparty_wallet_id)), '')
       || coalesce(' t' || lower(hex(transfer_id)), '')
       || coalesce(' h' || lower(hex(hold_id)), '')
FROM search_transactions;

DROP INDEX search_transactions_by_wallet;
DROP INDEX search_transactions_by_owner;
DROP INDEX search_transactions_by_counterparty;
DROP INDEX search_transactions_by_transfer;
DROP INDEX search_transactions_by_hold;
