-- The hold directory: which wallet each hold was placed on, so that
-- `/holds/{holdId}` finds its wallet. A row enters in the transaction that
-- appends its HoldPlaced; the primary key keeps a hold id to one hold.
-- `expires_at` (RFC 3339, microseconds, UTC) is the pending hold's expiry,
-- cleared in the transaction that settles it: the expiry sweeper's work list.
CREATE TABLE hold_directory (
    hold_id    TEXT PRIMARY KEY,
    wallet_id  TEXT NOT NULL,
    expires_at TEXT
) WITHOUT ROWID;

CREATE INDEX hold_directory_due ON hold_directory (expires_at) WHERE expires_at IS NOT NULL;
