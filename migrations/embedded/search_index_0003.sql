-- The hold a hold event is about (HoldPlaced, HoldCaptured,
-- HoldCaptureReceived, HoldVoided, HoldExpired): shown as `holdId` in the
-- history and found by a search for exactly that id. NULL for every other
-- event, and for hold events indexed before it was recorded until the index
-- is rebuilt.
ALTER TABLE search_transactions ADD COLUMN hold_id TEXT;
CREATE INDEX search_transactions_by_hold ON search_transactions (hold_id);
