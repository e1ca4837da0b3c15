//! End-to-end tests of the HTTP API against the real application on a real
//! port, with its embedded storage in a temporary folder.

mod as_of;
mod auth;
mod capture_process;
mod concurrency;
mod connections;
mod contract;
mod cross_origin;
mod damaged;
mod dead_letters;
mod file_locks;
mod helpers;
mod holds;
mod idempotency;
mod input;
mod ledger;
mod owner_ids;
mod projection_lag;
mod query_parameters;
mod restart;
mod transactions;
mod transfer_process;
mod validation;
mod verify;
mod wal_checkpoints;
mod wallet_controls;
