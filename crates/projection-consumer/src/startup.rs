//! Builds the consumer from configuration: the read model, the search index,
//! their handler, and the shared host around them.

use std::sync::Arc;

use consumer_host::{dependency, Application, HostError, Service, StartupWait};
use event_bus::ParkedWallets;
use event_sink::Transience;
use read_model::{PostgresReadModel, ReadModel};
use search_index::{ElasticsearchIndex, SearchIndex, SearchIndexError};

use crate::config::{Config, PROFILE};
use crate::handler::ProjectionHandler;
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    SearchIndex(#[from] SearchIndexError),
    #[error(transparent)]
    Host(#[from] HostError),
}

/// Connects (and migrates) PostgreSQL, makes sure the search indices exist
/// (each store waited for a bounded time when it does not answer yet), and
/// starts consuming.
pub async fn build(config: &Config) -> Result<Application, StartupError> {
    let pool = config
        .settings
        .connect_postgres()
        .await
        .map_err(HostError::from)?;
    let parked = ParkedWallets::new(pool.clone());
    let read_model: Arc<dyn ReadModel> = Arc::new(PostgresReadModel::new(pool));
    let search_index = ElasticsearchIndex::connect_with_timeout(
        &config.elasticsearch_url,
        &config.elasticsearch_index_prefix,
        config.elasticsearch_request_timeout_ms,
    )?;
    StartupWait::default()
        .until_ready("elasticsearch", SearchIndexError::is_transient, || {
            search_index.ensure_indices()
        })
        .await?;
    build_with(config, read_model, Arc::new(search_index), parked)
}

/// Starts on a read model and a search index already opened, the parked
/// wallets of both in `parked`.
pub fn build_with(
    config: &Config,
    read_model: Arc<dyn ReadModel>,
    search_index: Arc<dyn SearchIndex>,
    parked: ParkedWallets,
) -> Result<Application, StartupError> {
    let metrics = Metrics::new().map_err(HostError::from)?;
    let handler = Arc::new(ProjectionHandler::new(
        Arc::clone(&read_model),
        Arc::clone(&search_index),
        metrics.clone(),
    ));
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
    tracing::info!(index_prefix = %config.elasticsearch_index_prefix, "search index ready");
    let service = Service {
        name: PROFILE.name,
        handler,
        dependencies: vec![postgres, elasticsearch],
        metrics: metrics.host,
        parked,
    };
    Ok(Application::start(&config.settings, service)?)
}
