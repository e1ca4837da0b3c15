//! The ledger consumer: wallet events from Kafka into the double-entry
//! ledger in PostgreSQL.
//!
//! Each batch is posted by [`ledger::PostgresLedger`] in one PostgreSQL
//! transaction together with the ids of the events it posted; an event whose
//! id is already there is skipped. The bus commits Kafka offsets only after
//! that transaction committed, so a crash in between redelivers the batch,
//! and the redelivery posts nothing twice. The application shell (settings,
//! HTTP, shutdown, dead-letter replay) is `consumer_host`'s, shared with the
//! projection consumer.

mod config;
mod handler;
mod metrics;
mod rebuild;
mod startup;

pub use config::{Command, Config, RebuildArgs, PROFILE, REBUILD_BATCH_SIZE_DEFAULT};
pub use handler::{LedgerHandler, HANDLER_NAME};
pub use metrics::Metrics;
pub use rebuild::{rebuild, rebuild_with, replay_log, RebuildError, RebuildOutcome};
pub use startup::{build, build_with};
