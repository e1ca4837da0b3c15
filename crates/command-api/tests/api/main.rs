//! End-to-end tests of the HTTP API against the real application on a real
//! port, with its embedded storage in a temporary folder.

mod as_of;
mod concurrency;
mod contract;
mod helpers;
mod idempotency;
mod ledger;
mod restart;
mod transactions;
mod transfer_process;
mod validation;
mod wallet_controls;
