-- What a wallet's pending holds reserve (an exact decimal string); its
-- available balance is balance − held_balance.
ALTER TABLE wallets ADD COLUMN held_balance TEXT NOT NULL DEFAULT '0.00';
