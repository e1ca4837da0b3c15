-- Holds (authorizations).

-- HOLD_PLACED moves money from a wallet's account to its held sub-account
-- (`held:<wallet id>`), HOLD_RELEASED (a void or an expiry) back, and
-- HOLD_CAPTURED out of the held sub-account (the released rest back).
ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_transaction_type_check;
ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_transaction_type_check
    CHECK (transaction_type IN
        ('WALLET_CREATED', 'CREDIT', 'DEBIT', 'TRANSFER_OUT', 'TRANSFER_IN', 'WALLET_UPDATED',
         'HOLD_PLACED', 'HOLD_RELEASED', 'HOLD_CAPTURED'));
