-- A wallet is read from its first and newest transaction rows
-- (crates/search-index/src/embedded/wallets.rs) instead of a row of its own,
-- which every batch rewrote: half of the file's writes. Every wallet the table
-- held has those rows, so nothing is lost with it.
DROP TABLE search_wallets;
