//! Builds the relay from configuration and runs it.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use event_bus::{KafkaPublisher, PublisherConfig};
use event_relay::RelayLimits;
use event_store::{EventStore, StoreError};
use observability::Listening;
use sqlx::postgres::{PgConnectOptions, PgPool};
use tokio::sync::watch;

use crate::config::Config;
use crate::http;
use crate::leader::{run_elected_relay, AbortOnDrop, Leadership};
use crate::metrics::Metrics;

/// How long the relay gets to finish its batch and release the lock at shutdown.
pub const RELAY_STOP_WAIT_MS: u64 = 35_000;
/// Bound on the Kafka reachability probe of `/health`.
pub const HEALTH_KAFKA_TIMEOUT_MS: u64 = 2_000;
/// HTTP worker threads: two endpoints, rarely called.
const HTTP_WORKERS: usize = 2;

pub struct AppState {
    pub store: Arc<dyn EventStore>,
    pub publisher: Arc<KafkaPublisher>,
    pub leadership: watch::Receiver<Leadership>,
    pub metrics: Metrics,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("DATABASE_URL is not a PostgreSQL URL: {0}")]
    DatabaseUrl(#[source] sqlx::Error),
    #[error(transparent)]
    Postgres(#[from] postgres_support::PostgresError),
    #[error(transparent)]
    EventStore(#[from] StoreError),
    #[error(transparent)]
    EventStoreChoice(#[from] event_store_choice::ChoiceError),
    #[error(transparent)]
    Bus(#[from] event_bus::BusError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Listen(#[from] observability::ListenError),
}

/// The health and metrics port of `config`'s `HOST` and `PORT`.
fn listen(config: &Config) -> Result<Listening, StartupError> {
    let address = observability::ListenAddress {
        host: config.host.clone(),
        port: config.port,
    };
    Ok(address.listen()?)
}

pub struct Application {
    server: Server,
    port: u16,
    shutdown: watch::Sender<bool>,
    /// Dropping the application (a killed task) kills the election with it,
    /// which closes the lock connection as a dead process would.
    relay: AbortOnDrop,
    leadership: watch::Receiver<Leadership>,
    progress: watch::Receiver<u64>,
}

impl Application {
    /// Binds the health and metrics port, connects (and migrates)
    /// PostgreSQL, opens the event store and starts.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        // Before any wait: a port in use or a bad HOST stops the start at
        // once, naming it, not after PostgreSQL answers (h157 F7).
        let listening = listen(&config)?;
        // A server that does not answer yet is waited for (a bounded time).
        let pool = postgres_support::StartupWait::default()
            .until_ready(
                "postgres",
                postgres_support::PostgresError::is_transient,
                || postgres_support::connect(&config.database_url, config.database_connections_max),
            )
            .await?;
        let store = config.event_store.open(&pool).await?.store;
        Self::start(listening, config, pool, store)
    }

    /// Starts on an event store already opened (`pool` holds the checkpoint).
    pub async fn build_with_store(
        config: Config,
        pool: PgPool,
        store: Arc<dyn EventStore>,
    ) -> Result<Self, StartupError> {
        Self::start(listen(&config)?, config, pool, store)
    }

    /// [`Application::build_with_store`] serving on a port bound before.
    fn start(
        listening: Listening,
        config: Config,
        pool: PgPool,
        store: Arc<dyn EventStore>,
    ) -> Result<Self, StartupError> {
        // A SIGINT or SIGTERM during the start stops the relay gracefully once it runs.
        let stop_signals = observability::StopSignals::install();
        let lock_options =
            PgConnectOptions::from_str(&config.database_url).map_err(StartupError::DatabaseUrl)?;
        let metrics = Metrics::new()?;
        let mut publisher_config = PublisherConfig::new(&config.kafka_brokers);
        publisher_config.topic = config.kafka_topic.clone();
        publisher_config.message_timeout_ms = config.kafka_message_timeout_ms;
        publisher_config.linger_ms = config.kafka_linger_ms;
        publisher_config.request_timeout_ms = HEALTH_KAFKA_TIMEOUT_MS;
        let publisher = Arc::new(KafkaPublisher::new(
            publisher_config,
            pool,
            metrics.publisher.clone(),
        )?);
        let limits = RelayLimits {
            batch_size_max: config.relay_batch_size,
            poll_interval_ms: config.relay_poll_interval_ms,
            retry_backoff_ms: config.relay_retry_backoff_ms,
            linger_ms: config.relay_linger_ms,
            give_up_after_failing_ms: Some(config.relay_step_down_after_failing_ms),
        };

        let (shutdown, stopping) = watch::channel(false);
        let (progress_sender, progress) = watch::channel(0);
        let (leadership_sender, leadership) = watch::channel(Leadership::default());
        let relay = AbortOnDrop(tokio::spawn(run_elected_relay(
            lock_options,
            Arc::clone(&store),
            publisher.clone(),
            limits,
            progress_sender,
            leadership_sender,
            stopping,
        )));

        let state = web::Data::new(AppState {
            store,
            publisher,
            leadership: leadership.clone(),
            metrics,
        });
        let Listening {
            address,
            listener,
            port,
        } = listening;
        let server =
            HttpServer::new(move || App::new().app_data(state.clone()).configure(http::routes))
                .workers(HTTP_WORKERS)
                .shutdown_timeout(config.shutdown_timeout_seconds)
                .disable_signals()
                .listen(listener)
                .map_err(|source| address.failed(source))?
                .run();
        if let Some(signals) = stop_signals {
            let handle = server.handle();
            signals.stop_with(move || handle.stop(true));
        }
        tracing::info!(port, topic = %config.kafka_topic, "outbox-relay listening");
        Ok(Self {
            server,
            port,
            shutdown,
            relay,
            leadership,
            progress,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether this replica leads, as it changes.
    pub fn leadership(&self) -> watch::Receiver<Leadership> {
        self.leadership.clone()
    }

    /// The position this replica has published and checkpointed.
    pub fn progress(&self) -> watch::Receiver<u64> {
        self.progress.clone()
    }

    /// Stops the HTTP server, which then stops the relay (see `run_until_stopped`).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT or a handle's stop; then lets the relay
    /// finish its batch and release the leader lock.
    pub async fn run_until_stopped(mut self) -> std::io::Result<()> {
        let served = (&mut self.server).await;
        self.shutdown.send_replace(true);
        if tokio::time::timeout(Duration::from_millis(RELAY_STOP_WAIT_MS), &mut self.relay.0)
            .await
            .is_err()
        {
            tracing::warn!("the relay did not stop in time");
        }
        tracing::info!("outbox-relay stopped");
        served
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_port_in_use_or_a_bad_host_is_refused_before_postgresql_is_waited_for() {
        let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("a port");
        let port = taken.local_addr().expect("its address").port();
        // Nothing listens there: the start would wait for it 120 s.
        let mut in_use = Config::for_test("postgres://u:p@127.0.0.1:1/db", "127.0.0.1:1", "t");
        in_use.port = port;
        let mut bogus = in_use.clone();
        bogus.host = "bogus.invalid".to_owned();
        bogus.port = 0;
        for (config, named) in [(in_use, port.to_string()), (bogus, "bogus.invalid".into())] {
            let refused = tokio::time::timeout(Duration::from_secs(10), Application::build(config))
                .await
                .expect("refused at once, not after the wait")
                .map(|_| ())
                .expect_err("cannot listen");
            assert!(matches!(refused, StartupError::Listen(_)), "{refused}");
            assert!(refused.to_string().contains(&named), "{refused}");
        }
    }
}
