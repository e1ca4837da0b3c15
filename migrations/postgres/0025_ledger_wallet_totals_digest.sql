-- The SHA-256 of each totals checkpoint's own values (crates/ledger/src/totals.rs,
-- `checkpoint_digest`): a row whose values were edited without it is passed and
-- deleted, not summed on (tester h167 F2). Rows written before it have none and
-- are replaced by the next summary that sums past them.
ALTER TABLE ledger_wallet_totals ADD COLUMN digest TEXT;
