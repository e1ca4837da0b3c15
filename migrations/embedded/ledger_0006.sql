-- The reference index takes only the transactions whose reference is not
-- their own id (issue 13: bytes written per operation). A credit's or a
-- debit's reference is its event id, which the transaction id's own unique
-- index holds already; a transfer's halves (the transfer id) and a hold's
-- transactions (the hold id) are what the reference index is for. A lookup by
-- reference reads both indexes: `t.transaction_id = ? AND t.reference_id =
-- t.transaction_id` or `t.reference_id = ? AND t.reference_id <>
-- t.transaction_id` (SQLite reads a partial index only for a query that
-- repeats its condition).
DROP INDEX ledger_transactions_by_reference;
CREATE INDEX ledger_transactions_by_reference ON ledger_transactions (reference_id)
    WHERE reference_id <> transaction_id;
