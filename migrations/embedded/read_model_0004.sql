-- The pending holds that have an expiry, so that a list stops counting a
-- hold as held once it is due, before its HoldExpired is projected. A row
-- leaves when the hold is captured, voided or expired. amount is an exact
-- decimal string; expires_at is RFC 3339 in UTC with nine fractional digits,
-- so that text order is time order (years 0000 to 9999).
CREATE TABLE expiring_holds (
    wallet_id  TEXT NOT NULL,
    hold_id    TEXT NOT NULL,
    amount     TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (wallet_id, hold_id)
) WITHOUT ROWID;
