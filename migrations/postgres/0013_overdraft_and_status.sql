-- Overdraft limits and frozen and closed wallets.

-- A balance may go below zero, down to the wallet's overdraft limit.
ALTER TABLE wallet_read_model DROP CONSTRAINT wallet_read_model_balance_check;
ALTER TABLE wallet_read_model
    ADD COLUMN overdraft_limit NUMERIC NOT NULL DEFAULT 0 CHECK (overdraft_limit >= 0),
    ADD COLUMN status TEXT NOT NULL DEFAULT 'ACTIVE'
        CHECK (status IN ('ACTIVE', 'FROZEN', 'CLOSED'));

-- WALLET_UPDATED: a change of a wallet that moves no money (an overdraft
-- limit, a freeze, an unfreeze, a closing), recorded with no entries.
ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_transaction_type_check;
ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_transaction_type_check
    CHECK (transaction_type IN
        ('WALLET_CREATED', 'CREDIT', 'DEBIT', 'TRANSFER_OUT', 'TRANSFER_IN', 'WALLET_UPDATED'));
