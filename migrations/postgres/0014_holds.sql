-- Holds (authorizations).

-- HOLD_PLACED moves money from a wallet's account to its held sub-account
-- (`held:<wallet id>`), HOLD_RELEASED (a void or an expiry) back, and
-- HOLD_CAPTURED out of the held sub-account (the released rest back).
ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_transaction_type_check;
ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_transaction_type_check
    CHECK (transaction_type IN
        ('WALLET_CREATED', 'CREDIT', 'DEBIT', 'TRANSFER_OUT', 'TRANSFER_IN', 'WALLET_UPDATED',
         'HOLD_PLACED', 'HOLD_RELEASED', 'HOLD_CAPTURED'));

-- The hold directory: which wallet each hold was placed on, so that
-- `/holds/{holdId}` finds its wallet. A row enters in the transaction that
-- appends its HoldPlaced; the primary key keeps a hold id to one hold.
-- `expires_at` is the pending hold's expiry, cleared in the transaction that
-- settles it: the expiry sweeper's work list.
CREATE TABLE hold_directory (
    hold_id    TEXT PRIMARY KEY,
    wallet_id  TEXT NOT NULL,
    expires_at TIMESTAMPTZ
);

CREATE INDEX hold_directory_due ON hold_directory (expires_at) WHERE expires_at IS NOT NULL;

-- What a wallet's pending holds reserve; its available balance is balance − held_balance.
ALTER TABLE wallet_read_model ADD COLUMN held_balance NUMERIC NOT NULL DEFAULT 0;
