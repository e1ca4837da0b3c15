//! The running consumer: the consumer task beside an HTTP server with
//! `/health` and `/metrics`, stopped together.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use event_bus::{run_consumer_with_metrics, BusError, KafkaProbe, ParkedWallets};
use event_sink::EventSink;
use tokio::sync::watch;
use tokio::task::{JoinError, JoinHandle};

use crate::health::Dependency;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::settings::{ReplayDlqArgs, Settings};

/// How long the consumer gets to finish (and commit) its batch at shutdown.
pub const CONSUMER_STOP_WAIT_MS: u64 = 30_000;
/// HTTP worker threads: two endpoints, rarely called.
const HTTP_WORKERS: usize = 2;

/// What a consumer binary brings to the host.
pub struct Service {
    /// The binary, in logs.
    pub name: &'static str,
    pub handler: Arc<dyn EventSink>,
    /// The stores `/health` checks beside Kafka.
    pub dependencies: Vec<Arc<dyn Dependency>>,
    /// The registry `/metrics` exports; the bus's metrics go in it too.
    pub metrics: Metrics,
    /// The wallets with dead letters, in the service's PostgreSQL: their
    /// later events are parked behind them (see `event_bus::ParkedWallets`).
    pub parked: ParkedWallets,
}

/// Why a consumer could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Postgres(#[from] postgres_support::PostgresError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Kafka(#[from] BusError),
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
    name: &'static str,
    server: Server,
    port: u16,
    shutdown: watch::Sender<bool>,
    consumer: JoinHandle<Result<(), BusError>>,
}

impl Application {
    /// Starts consuming `settings.kafka_topic` in `settings.kafka_group_id`
    /// with the service's handler, and serves `/health` and `/metrics`.
    pub fn start(settings: &Settings, service: Service) -> Result<Self, HostError> {
        // Listen first: a port taken must not leave a consumer running.
        let listener = TcpListener::bind((settings.host.as_str(), settings.port))?;
        let port = listener.local_addr()?.port();
        let mut consumer_config = settings.consumer_config();
        consumer_config.parked = Some(service.parked.clone());
        let kafka: Arc<dyn Dependency> = Arc::new(KafkaProbe::for_consumer(&consumer_config)?);
        let (shutdown, stopping) = watch::channel(false);
        let consumer = tokio::spawn(run_consumer_with_metrics(
            consumer_config,
            service.handler,
            service.metrics.consumer.clone(),
            stopping,
        ));

        let mut dependencies = vec![kafka];
        dependencies.extend(service.dependencies);
        let state = web::Data::new(AppState {
            dependencies,
            registry: service.metrics.registry,
            consumer: service.metrics.consumer.clone(),
        });
        let server =
            HttpServer::new(move || App::new().app_data(state.clone()).configure(http::routes))
                .workers(HTTP_WORKERS)
                .shutdown_timeout(settings.shutdown_timeout_seconds)
                .listen(listener)?
                .run();
        tracing::info!(
            port,
            topic = %settings.kafka_topic,
            group = %settings.kafka_group_id,
            "{} listening",
            service.name
        );
        Ok(Self {
            name: service.name,
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
                tracing::info!("{} stopped", self.name);
                Ok(served?)
            }
            finished = &mut self.consumer => {
                handle.stop(true).await;
                let error = match finished {
                    Ok(Ok(())) => RunError::ConsumerStopped,
                    Ok(Err(error)) => RunError::Consumer(error),
                    Err(error) => RunError::ConsumerTask(error),
                };
                tracing::error!(%error, "{} stopping", self.name);
                Err(error)
            }
        }
    }
}

/// Republishes up to `limit` of the dead letters `handler` parked to the
/// topic, marked as replayed for it (its parked wallets take them).
pub async fn replay_dead_letters(
    settings: &Settings,
    handler: &str,
    limit: usize,
) -> Result<usize, HostError> {
    let mut config = settings.consumer_config();
    config.parked = Some(ParkedWallets::new(settings.connect_postgres().await?));
    Ok(event_bus::replay_dlq(&config, handler, limit).await?)
}

impl ReplayDlqArgs {
    /// The `replay-dlq` subcommand: replays the dead letters of `handler`
    /// (the binary's), then logs how many.
    pub async fn run(&self, settings: &Settings, handler: &str) -> Result<usize, HostError> {
        let replayed = replay_dead_letters(settings, handler, self.limit).await?;
        tracing::info!(replayed, "dead letters replayed");
        Ok(replayed)
    }
}
