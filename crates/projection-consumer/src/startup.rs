//! Builds the consumer from configuration: the read model and the search
//! index, each with its handler in a consumer group of its own, and the
//! shared host around them.

use std::sync::Arc;
use std::time::Duration;

use consumer_host::{
    dependency, partial_dependency, Application, GroupSink, HostError, Listening, Service,
};
use event_bus::ParkedWallets;
use postgres_support::consumer_offsets;
use read_model::{PostgresReadModel, ReadModel};
use search_index::{ElasticsearchIndex, SearchIndex, SearchIndexError};
use sqlx::PgPool;

use crate::config::{Config, PROFILE};
use crate::metrics::Metrics;
use crate::read_model_handler::ReadModelHandler;
use crate::search_handler::SearchIndexHandler;

/// How long start-up waits for the search server to make sure the indices
/// exist, in ms, before the consumers start without it: a server stopped
/// (not refusing) would otherwise hold the read model back for a whole
/// request timeout (`ELASTICSEARCH_REQUEST_TIMEOUT_MS`, 10 s by default).
pub const STARTUP_INDICES_WAIT_MS: u64 = 2_000;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    SearchIndex(#[from] SearchIndexError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("seeding the search index's consumer group in PostgreSQL: {0}")]
    Seed(#[source] sqlx::Error),
}

/// Connects (and migrates) PostgreSQL, waited for a bounded time when it
/// does not answer yet, seeds the search index's group on its first start,
/// and starts consuming. The search server is asked once to make sure the
/// indices exist; when it does not answer or refuses, the read model starts
/// all the same (it needs no search server), and the search index's group
/// makes the indices before its first batch, retrying until they are.
pub async fn build(config: &Config) -> Result<Application, StartupError> {
    // Before any wait: a port in use or a bad HOST stops the start at once.
    let listening = consumer_host::listen(&config.settings)?;
    let pool = config
        .settings
        .connect_postgres()
        .await
        .map_err(HostError::from)?;
    // Before either group consumes: a deployment upgraded from one group
    // for both views starts the search index's where that one stood.
    let search_group = config.search_group_id();
    let settings = &config.settings;
    let seeded = consumer_offsets::seed_once(
        &pool,
        &settings.kafka_group_id,
        &search_group,
        &settings.kafka_topic,
    )
    .await
    .map_err(StartupError::Seed)?;
    if seeded > 0 {
        tracing::info!(group = %search_group, from = %settings.kafka_group_id, partitions = seeded, "the search index's group starts from the projection group's stored offsets");
    }
    let search_index = ElasticsearchIndex::connect_with_timeout(
        &config.elasticsearch_url,
        &config.elasticsearch_index_prefix,
        config.elasticsearch_request_timeout_ms,
    )?;
    let asked = tokio::time::timeout(
        Duration::from_millis(STARTUP_INDICES_WAIT_MS),
        search_index.ensure_indices(),
    )
    .await;
    let indices_ready = match asked {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::warn!(%error, "the search index's indices are not ready; the read model starts without them, and the search index's group makes them before its first batch (retried until they are)");
            false
        }
        Err(_) => {
            tracing::warn!("the search server gave no answer within {STARTUP_INDICES_WAIT_MS} ms; the read model starts without it, and the search index's group makes its indices before its first batch");
            false
        }
    };
    build_on(
        listening,
        config,
        pool,
        Arc::new(search_index),
        indices_ready,
    )
}

/// Starts on the PostgreSQL of the read model (its offsets, the search
/// index's offsets and both handlers' parked wallets are there too) and a
/// search index already opened (`indices_ready` when its indices exist).
pub fn build_with(
    config: &Config,
    pool: PgPool,
    search_index: Arc<dyn SearchIndex>,
    indices_ready: bool,
) -> Result<Application, StartupError> {
    let listening = consumer_host::listen(&config.settings)?;
    build_on(listening, config, pool, search_index, indices_ready)
}

/// [`build_with`] on a port bound before.
fn build_on(
    listening: Listening,
    config: &Config,
    pool: PgPool,
    search_index: Arc<dyn SearchIndex>,
    indices_ready: bool,
) -> Result<Application, StartupError> {
    let metrics = Metrics::new().map_err(HostError::from)?;
    let read_model: Arc<dyn ReadModel> = Arc::new(PostgresReadModel::new(pool.clone()));
    let consumers = vec![
        GroupSink {
            group_id: config.settings.kafka_group_id.clone(),
            sink: Arc::new(ReadModelHandler::new(
                Arc::clone(&read_model),
                metrics.clone(),
            )),
        },
        GroupSink {
            group_id: config.search_group_id(),
            sink: Arc::new(SearchIndexHandler::new(
                Arc::clone(&search_index),
                pool.clone(),
                indices_ready,
                metrics.clone(),
            )),
        },
    ];
    // The read model's PostgreSQL answers with its checkpoint.
    let postgres = dependency("postgres", move || {
        let read_model = Arc::clone(&read_model);
        async move { Ok(Some(read_model.checkpoint().await?)) }
    });
    // Only the search index's group waits for it: degraded, not unavailable.
    let elasticsearch = partial_dependency("elasticsearch", move || {
        let search_index = Arc::clone(&search_index);
        async move {
            search_index.ping().await?;
            Ok(None)
        }
    });
    tracing::info!(index_prefix = %config.elasticsearch_index_prefix, "search index configured");
    let service = Service {
        name: PROFILE.name,
        consumers,
        dependencies: vec![postgres, elasticsearch],
        metrics: metrics.host,
        parked: ParkedWallets::new(pool),
    };
    Ok(Application::start_on(listening, &config.settings, service)?)
}
