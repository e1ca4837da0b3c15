//! `rebuild`: the read model and the search index again from the event store,
//! each built beside the live one and switched atomically, so readers never
//! see a half-built view.
//!
//! Stop the projection-consumers first. The read model is built in the
//! PostgreSQL schema [`BESIDE_SCHEMA`] (tables made `LIKE` the live ones) and swapped in by one transaction; the
//! search index is built in new indices `<prefix>-rebuild-<time>-*` and put
//! behind the names `<prefix>-wallets` and `<prefix>-transactions` by one
//! alias switch (the old indices are deleted after it). The events come from
//! the configured event store (`EVENT_STORE`, as for command-api and
//! outbox-relay), in log order, a bounded batch at a time.
//!
//! It refuses before building anything when the log is empty or its head is
//! behind the read model's checkpoint (the view holds events the log lacks).
//! Kafka offsets stay as they are: what the restarted consumers receive again
//! is skipped by the read model (by version) and overwritten in the index.

mod beside;

use std::sync::Arc;

use event_store::{EventStore, StoreError};
use event_store_choice::{ChoiceError, EventStoreArgs};
use read_model::{PostgresReadModel, ReadModel, ReadModelError};
use search_index::{ElasticsearchIndex, SearchIndex, SearchIndexError};

pub use beside::{IndexBeside, ReadModelBeside, BESIDE_SCHEMA};

use crate::config::Config;

/// Events read from the store and applied per batch, unless told otherwise.
pub const REBUILD_BATCH_SIZE_DEFAULT: usize = search_index::BULK_EVENTS_MAX;

/// `projection-consumer rebuild`'s options.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct RebuildArgs {
    /// Events read from the event store and applied per batch.
    #[arg(long, default_value_t = REBUILD_BATCH_SIZE_DEFAULT,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=search_index::BULK_EVENTS_MAX as u64))]
    pub batch_size: usize,
    /// The event store to read (EVENT_STORE, KURRENTDB_URL).
    #[command(flatten)]
    pub event_store: EventStoreArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Postgres(#[from] postgres_support::PostgresError),
    #[error("read model beside the live one: {0}")]
    Beside(#[source] sqlx::Error),
    #[error("search index alias switch: {0}")]
    Alias(String),
    #[error(transparent)]
    EventStoreChoice(#[from] ChoiceError),
    #[error("event store: {0}")]
    EventStore(#[from] StoreError),
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    #[error(transparent)]
    SearchIndex(#[from] SearchIndexError),
    #[error(
        "refused: the event log is empty while the read model's checkpoint is at position {checkpoint}; \
         nothing to rebuild from (is the event store the configured one?); the views are left as they were"
    )]
    EmptyLog { checkpoint: u64 },
    #[error(
        "refused: the event log's head {head} is behind the read model's checkpoint {checkpoint}; \
         the views hold events the log lacks; they are left as they were"
    )]
    LogBehindViews { head: u64, checkpoint: u64 },
    #[error("the event log did not advance past position {0}")]
    LogStalled(u64),
}

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildOutcome {
    /// The log's head when the replay ended: everything up to it is in the new views.
    pub head: u64,
    pub events_applied: u64,
    pub batches: u64,
    /// The prefix of the new indices now behind the search index's names.
    pub index_prefix: String,
}

/// Connects to PostgreSQL (migrating it), the configured event store and the
/// search server, and rebuilds both views.
pub async fn rebuild(config: &Config, args: &RebuildArgs) -> Result<RebuildOutcome, RebuildError> {
    let pool = config.settings.connect_postgres().await?;
    let outcome = match args.event_store.open(&pool).await {
        Ok(opened) => rebuild_from(config, opened.store, &pool, args.batch_size).await,
        Err(error) => Err(error.into()),
    };
    pool.close().await;
    outcome
}

/// Rebuilds both views of `config` from `store`; `pool` holds the live read model.
pub async fn rebuild_from(
    config: &Config,
    store: Arc<dyn EventStore>,
    pool: &sqlx::PgPool,
    batch_size: usize,
) -> Result<RebuildOutcome, RebuildError> {
    let head = store.head_position().await?;
    let checkpoint = PostgresReadModel::new(pool.clone()).checkpoint().await?;
    if head == 0 {
        return Err(RebuildError::EmptyLog { checkpoint });
    }
    if head < checkpoint {
        return Err(RebuildError::LogBehindViews { head, checkpoint });
    }
    let read_model = ReadModelBeside::create(pool, &config.settings.database_url).await?;
    let index = IndexBeside::create(config).await?;
    let mut outcome = replay(
        store.as_ref(),
        read_model.read_model(),
        index.index(),
        batch_size,
    )
    .await?;
    read_model.switch().await?;
    outcome.index_prefix = index.switch().await?;
    Ok(outcome)
}

/// Applies every event of `store` to both views, in log order, until a read
/// finds nothing more (appends made meanwhile included). Each batch must move
/// past the last, so the loop ends.
async fn replay(
    store: &dyn EventStore,
    read_model: &dyn ReadModel,
    index: &dyn SearchIndex,
    batch_size: usize,
) -> Result<RebuildOutcome, RebuildError> {
    let batch_size = batch_size.clamp(1, event_store::READ_ALL_BATCH_MAX);
    let mut outcome = RebuildOutcome::default();
    let mut after = 0;
    loop {
        let batch = store.read_all(after, batch_size).await?;
        let Some(last) = batch.last().map(|recorded| recorded.position) else {
            break;
        };
        if last <= after {
            return Err(RebuildError::LogStalled(after));
        }
        read_model.apply(&batch, Some(last)).await?;
        index.index_batch(&batch).await?;
        outcome.events_applied += consumer_host::count(batch.len());
        outcome.batches += 1;
        after = last;
        tracing::debug!(position = after, "rebuild progress");
    }
    outcome.head = after;
    Ok(outcome)
}

/// The search index of `prefix` on the configured server.
fn search_index(config: &Config, prefix: &str) -> Result<ElasticsearchIndex, SearchIndexError> {
    ElasticsearchIndex::connect_with_timeout(
        &config.elasticsearch_url,
        prefix,
        config.elasticsearch_request_timeout_ms,
    )
}
