//! Builds the consumer from configuration and runs it.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use event_bus::{run_consumer_with_metrics, BusError};
use read_model::{PostgresReadModel, ReadModel};
use search_index::{ElasticsearchIndex, SearchIndex, SearchIndexError};
use tokio::sync::watch;
use tokio::task::{JoinError, JoinHandle};

use crate::config::Config;
use crate::handler::ProjectionHandler;
use crate::http;
use crate::metrics::Metrics;

/// How long the consumer gets to finish (and commit) its batch at shutdown.
pub const CONSUMER_STOP_WAIT_MS: u64 = 30_000;
/// HTTP worker threads: two endpoints, rarely called.
const HTTP_WORKERS: usize = 2;

pub struct AppState {
    pub read_model: Arc<dyn ReadModel>,
    pub search_index: Arc<dyn SearchIndex>,
    pub metrics: Metrics,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Postgres(#[from] postgres_support::PostgresError),
    #[error(transparent)]
    SearchIndex(#[from] SearchIndexError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// Why a running consumer stopped other than by SIGTERM/SIGINT or a handle.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("HTTP server: {0}")]
    Http(#[from] std::io::Error),
    /// A dead letter could not be written: nothing more can be committed safely.
    #[error("consumer: {0}")]
    Consumer(#[from] BusError),
    #[error("the consumer task ended abnormally: {0}")]
    ConsumerTask(#[from] JoinError),
    #[error("the consumer stopped on its own")]
    ConsumerStopped,
}

pub struct Application {
    server: Server,
    port: u16,
    shutdown: watch::Sender<bool>,
    consumer: JoinHandle<Result<(), BusError>>,
}

impl Application {
    /// Connects (and migrates) PostgreSQL, makes sure the search indices
    /// exist, and starts consuming.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let pool = postgres_support::connect(&config.database_url, config.database_connections_max)
            .await?;
        let read_model: Arc<dyn ReadModel> = Arc::new(PostgresReadModel::new(pool));
        let search_index = ElasticsearchIndex::connect_with_timeout(
            &config.elasticsearch_url,
            &config.elasticsearch_index_prefix,
            config.elasticsearch_request_timeout_ms,
        )?;
        search_index.ensure_indices().await?;
        Self::build_with(config, read_model, Arc::new(search_index))
    }

    /// Starts on a read model and a search index already opened.
    pub fn build_with(
        config: Config,
        read_model: Arc<dyn ReadModel>,
        search_index: Arc<dyn SearchIndex>,
    ) -> Result<Self, StartupError> {
        let metrics = Metrics::new()?;
        let handler = Arc::new(ProjectionHandler::new(
            Arc::clone(&read_model),
            Arc::clone(&search_index),
            metrics.clone(),
        ));
        let (shutdown, stopping) = watch::channel(false);
        let consumer = tokio::spawn(run_consumer_with_metrics(
            config.consumer_config(),
            handler,
            metrics.consumer.clone(),
            stopping,
        ));

        let state = web::Data::new(AppState {
            read_model,
            search_index,
            metrics,
        });
        let listener = TcpListener::bind((config.host.as_str(), config.port))?;
        let port = listener.local_addr()?.port();
        let server =
            HttpServer::new(move || App::new().app_data(state.clone()).configure(http::routes))
                .workers(HTTP_WORKERS)
                .shutdown_timeout(config.shutdown_timeout_seconds)
                .listen(listener)?
                .run();
        tracing::info!(
            port,
            topic = %config.kafka_topic,
            group = %config.kafka_group_id,
            index_prefix = %config.elasticsearch_index_prefix,
            "projection-consumer listening"
        );
        Ok(Self {
            server,
            port,
            shutdown,
            consumer,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the HTTP server, which then stops the consumer (see `run_until_stopped`).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT or a handle's stop, then lets the consumer
    /// finish and commit its batch. When the consumer stops on its own (it
    /// cannot park a dead letter), stops the server and returns the error, so
    /// the process exits and is restarted.
    pub async fn run_until_stopped(mut self) -> Result<(), RunError> {
        let handle = self.server.handle();
        tokio::select! {
            served = &mut self.server => {
                self.shutdown.send_replace(true);
                let waited = tokio::time::timeout(
                    Duration::from_millis(CONSUMER_STOP_WAIT_MS),
                    &mut self.consumer,
                )
                .await;
                match waited {
                    Ok(Ok(Ok(()))) => {}
                    Ok(Ok(Err(error))) => tracing::error!(%error, "consumer failed while stopping"),
                    Ok(Err(error)) => tracing::error!(%error, "consumer task ended abnormally"),
                    Err(_) => tracing::warn!("the consumer did not stop in time"),
                }
                tracing::info!("projection-consumer stopped");
                Ok(served?)
            }
            finished = &mut self.consumer => {
                handle.stop(true).await;
                let error = match finished {
                    Ok(Ok(())) => RunError::ConsumerStopped,
                    Ok(Err(error)) => RunError::Consumer(error),
                    Err(error) => RunError::ConsumerTask(error),
                };
                tracing::error!(%error, "projection-consumer stopping");
                Err(error)
            }
        }
    }
}

/// Republishes up to `limit` of this group's dead letters to the topic.
pub async fn replay_dead_letters(config: &Config, limit: usize) -> Result<usize, BusError> {
    event_bus::replay_dlq(&config.consumer_config(), limit).await
}
