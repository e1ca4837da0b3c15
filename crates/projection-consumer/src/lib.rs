//! The projection consumer: wallet events from Kafka into the PostgreSQL read
//! model and the search index, each fed by a consumer group of its own
//! (`KAFKA_GROUP_ID`, and `<KAFKA_GROUP_ID>-search-index`), so one's store
//! being away never holds the other back.
//!
//! Both targets are idempotent (the read model skips versions it holds, the
//! search index overwrites documents by event id and versions wallets
//! externally), so the bus's at-least-once delivery and its retries of whole
//! batches are safe. Each group's offsets are stored in PostgreSQL: the read
//! model's in the transaction that applies a batch, the search index's right
//! after the bulk request that indexed it. The application shell (settings, HTTP, shutdown, dead-letter
//! replay) is `consumer_host`'s, shared with the ledger consumer. `rebuild`
//! builds both views again from the event store and switches them in atomically.

mod config;
mod metrics;
mod read_model_handler;
mod rebuild;
mod search_handler;
mod startup;

pub use config::{Command, Config, PROFILE};
pub use metrics::Metrics;
pub use read_model_handler::{ReadModelHandler, HANDLER_NAME};
pub use rebuild::{
    rebuild, rebuild_from, RebuildArgs, RebuildError, RebuildOutcome, BESIDE_SCHEMA,
    REBUILD_BATCH_SIZE_DEFAULT,
};
pub use search_handler::{SearchIndexHandler, SEARCH_HANDLER_NAME};
pub use startup::{build, build_with, StartupError, STARTUP_INDICES_WAIT_MS};
