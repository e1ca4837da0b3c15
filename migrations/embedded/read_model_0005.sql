-- A wallet's balances in a table of their own (issue 13: bytes written per
-- operation). Every event of a wallet changes its balance, held balance,
-- update time and version, and each projection batch wrote again every page
-- of `wallets` it touched: under load, nearly all of them, whole. Those four
-- columns now live in rows about half as long, keyed by the wallet id; what
-- an event rarely changes (owner, creation time, overdraft limit, status)
-- stays in `wallets`, whose pages a batch no longer writes for a credit.
CREATE TABLE wallet_balances (
    wallet_id    TEXT    PRIMARY KEY,
    balance      TEXT    NOT NULL,
    held_balance TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL,
    version      INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO wallet_balances (wallet_id, balance, held_balance, updated_at, version)
    SELECT wallet_id, balance, held_balance, updated_at, version FROM wallets;

ALTER TABLE wallets DROP COLUMN balance;
ALTER TABLE wallets DROP COLUMN held_balance;
ALTER TABLE wallets DROP COLUMN updated_at;
ALTER TABLE wallets DROP COLUMN version;
