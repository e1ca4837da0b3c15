//! The ledger consumer: wallet events from Kafka into the double-entry
//! ledger in PostgreSQL.
//!
//! Each batch is posted by [`ledger::PostgresLedger`] in one PostgreSQL
//! transaction together with the ids of the events it posted and the
//! consumer group's offsets (`consumer_offsets`, moved only from the offsets
//! the consumer expects); an event whose id is already there is skipped.
//! PostgreSQL's offsets rule where the consumer reads: a crash before the
//! transaction committed redelivers the batch, and PostgreSQL losing a
//! committed transaction (a failover) loses its offsets too, so the batch is
//! read again; either way nothing is posted twice. Kafka's committed offsets
//! follow, for lag and tools. The application shell (settings,
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
