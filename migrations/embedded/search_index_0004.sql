-- No index by amount (issue 13: bytes written per operation). An amount is a
-- random key: each indexed event dirtied a page of its own, written whole to
-- the WAL and again at the checkpoint. No query is driven by an amount: a
-- range of amounts only narrows a search that is read newest first by
-- position (the rowid), a wallet or an owner, which have their indexes.
DROP INDEX search_transactions_by_amount;
