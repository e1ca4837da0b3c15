-- The pending holds that have an expiry, so that a list stops counting a
-- hold as held once it is due, before its HoldExpired is projected. A row
-- leaves when the hold is captured, voided or expired.
CREATE TABLE read_model_expiring_holds (
    wallet_id  TEXT        NOT NULL,
    hold_id    TEXT        NOT NULL,
    amount     NUMERIC     NOT NULL CHECK (amount > 0),
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (wallet_id, hold_id)
);
