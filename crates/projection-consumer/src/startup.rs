//! Builds the consumer from configuration: the read model and the search
//! index, each with its handler in a consumer group of its own, and the
//! shared host around them.

use std::sync::Arc;

use consumer_host::{dependency, Application, GroupSink, HostError, Service};
use event_bus::ParkedWallets;
use event_sink::Transience;
use read_model::{PostgresReadModel, ReadModel};
use search_index::{ElasticsearchIndex, SearchIndex, SearchIndexError};
use sqlx::PgPool;

use crate::config::{Config, PROFILE};
use crate::metrics::Metrics;
use crate::read_model_handler::ReadModelHandler;
use crate::search_handler::SearchIndexHandler;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    SearchIndex(#[from] SearchIndexError),
    #[error(transparent)]
    Host(#[from] HostError),
}

/// Connects (and migrates) PostgreSQL, waited for a bounded time when it
/// does not answer yet, and starts consuming. The search server is asked
/// once to make sure the indices exist: a refusal (a mapping the server
/// will not take) stops the start-up; no answer does not, as the read model
/// needs no search server, and the search index's group makes the indices
/// before its first batch.
pub async fn build(config: &Config) -> Result<Application, StartupError> {
    let pool = config
        .settings
        .connect_postgres()
        .await
        .map_err(HostError::from)?;
    let search_index = ElasticsearchIndex::connect_with_timeout(
        &config.elasticsearch_url,
        &config.elasticsearch_index_prefix,
        config.elasticsearch_request_timeout_ms,
    )?;
    let indices_ready = match search_index.ensure_indices().await {
        Ok(()) => true,
        Err(error) if error.is_transient() => {
            tracing::warn!(%error, "the search server does not answer; the read model starts without it, the search index once it answers");
            false
        }
        Err(error) => return Err(error.into()),
    };
    build_with(config, pool, Arc::new(search_index), indices_ready)
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
    let elasticsearch = dependency("elasticsearch", move || {
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
    Ok(Application::start(&config.settings, service)?)
}
