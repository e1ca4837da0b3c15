//! The projection consumer: wallet events from Kafka into the PostgreSQL read
//! model and the search index.
//!
//! Both targets are idempotent (the read model skips versions it holds, the
//! search index overwrites documents by event id and versions wallets
//! externally), so the bus's at-least-once delivery and its retries of whole
//! batches are safe. Offsets are committed by the bus after the handler has
//! written both. The application shell (settings, HTTP, shutdown, dead-letter
//! replay) is `consumer_host`'s, shared with the ledger consumer. `rebuild`
//! builds both views again from the event store and switches them in atomically.

mod config;
mod handler;
mod metrics;
mod rebuild;
mod startup;

pub use config::{Command, Config, PROFILE};
pub use handler::{ProjectionHandler, HANDLER_NAME};
pub use metrics::Metrics;
pub use rebuild::{
    rebuild, rebuild_from, RebuildArgs, RebuildError, RebuildOutcome, BESIDE_SCHEMA,
    REBUILD_BATCH_SIZE_DEFAULT,
};
pub use startup::{build, build_with, StartupError};
