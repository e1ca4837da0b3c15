-- When each hold was placed (its createdAt) and what a settled one became,
-- written with the row and in the transaction that settles it, so a
-- wallet's holds are listed from the directory in any status, in the API's
-- order, without folding its stream (crates/event-store/src/hold_listing.rs;
-- issue 13). NULL in rows entered before this migration: a wallet with such
-- a row is listed from its stream. Hold ids in byte order (COLLATE "C"), as
-- the service sorts them.
ALTER TABLE hold_directory
    ADD COLUMN placed_at TIMESTAMPTZ,
    ADD COLUMN settled_as TEXT CHECK (settled_as IN ('CAPTURED', 'VOIDED', 'EXPIRED'));
CREATE INDEX hold_directory_by_wallet
    ON hold_directory (wallet_id, placed_at, hold_id COLLATE "C");
