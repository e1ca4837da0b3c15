-- A wallet's overdraft limit (an exact decimal string, zero or more) and its
-- status (ACTIVE, FROZEN, CLOSED); balances may now be negative, down to the limit.
ALTER TABLE wallets ADD COLUMN overdraft_limit TEXT NOT NULL DEFAULT '0.00';
ALTER TABLE wallets ADD COLUMN status TEXT NOT NULL DEFAULT 'ACTIVE'
    CHECK (status IN ('ACTIVE', 'FROZEN', 'CLOSED'));
