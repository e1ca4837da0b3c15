-- Identifier indexes hold only the rows that have the identifier (issue 13:
-- CPU and bytes per operation). A credit or a debit has no counterparty, no
-- transfer and no hold; each of its rows still put a NULL entry into three
-- indexes. `x = ?`, the only way these columns are queried (a search's text
-- compared with every identifier), implies `x IS NOT NULL`, so SQLite uses
-- the partial indexes for it.
DROP INDEX search_transactions_by_counterparty;
DROP INDEX search_transactions_by_transfer;
DROP INDEX search_transactions_by_hold;
CREATE INDEX search_transactions_by_counterparty ON search_transactions (counterparty_wallet_id)
    WHERE counterparty_wallet_id IS NOT NULL;
CREATE INDEX search_transactions_by_transfer ON search_transactions (transfer_id)
    WHERE transfer_id IS NOT NULL;
CREATE INDEX search_transactions_by_hold ON search_transactions (hold_id)
    WHERE hold_id IS NOT NULL;
