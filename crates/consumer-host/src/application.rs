//! The running consumer: one consumer task per group beside an HTTP server
//! with `/health` and `/metrics`, stopped together.

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use event_bus::{run_consumer_with_metrics, BusError, KafkaProbe, ParkedWallets};
use event_sink::EventSink;
use observability::Listening;
use tokio::sync::watch;
use tokio::task::{JoinError, JoinSet};

use crate::health::Dependency;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::settings::{ReplayDlqArgs, Settings};

/// How long the consumer gets to finish (and commit) its batch at shutdown.
pub const CONSUMER_STOP_WAIT_MS: u64 = 30_000;
/// HTTP worker threads: two endpoints, rarely called.
const HTTP_WORKERS: usize = 2;

/// One consumer group of a service and the sink its loop feeds.
pub struct GroupSink {
    /// The Kafka consumer group, whose offsets are this sink's alone.
    pub group_id: String,
    pub sink: Arc<dyn EventSink>,
}

/// What a consumer binary brings to the host.
pub struct Service {
    /// The binary, in logs.
    pub name: &'static str,
    /// Its consumer groups, each read by a loop of its own: a sink whose
    /// store is away holds back its own group only (projection-consumer's
    /// read model goes on while the search server is down).
    pub consumers: Vec<GroupSink>,
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
    #[error(transparent)]
    Listen(#[from] observability::ListenError),
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
    #[error("the consumer of group {0} stopped on its own")]
    ConsumerStopped(String),
}

pub struct Application {
    name: &'static str,
    server: Server,
    port: u16,
    shutdown: watch::Sender<bool>,
    /// One task per group; each ends with its group's name and outcome.
    consumers: JoinSet<(String, Result<(), BusError>)>,
}

/// The health and metrics port of `settings`' `HOST` and `PORT`, bound
/// before anything waits for a server (h157 F7).
pub fn listen(settings: &Settings) -> Result<Listening, HostError> {
    let address = observability::ListenAddress {
        host: settings.host.clone(),
        port: settings.port,
    };
    Ok(address.listen()?)
}

impl Application {
    /// Starts consuming `settings.kafka_topic` in each of the service's
    /// groups with its sink, and serves `/health` and `/metrics`.
    pub fn start(settings: &Settings, service: Service) -> Result<Self, HostError> {
        Self::start_on(listen(settings)?, settings, service)
    }

    /// [`Application::start`] serving on a port bound before.
    pub fn start_on(
        listening: Listening,
        settings: &Settings,
        service: Service,
    ) -> Result<Self, HostError> {
        // A SIGINT or SIGTERM during the start stops the consumer gracefully once it runs.
        let stop_signals = observability::StopSignals::install();
        // Listen first: a port taken must not leave a consumer running.
        let Listening {
            address,
            listener,
            port,
        } = listening;
        let kafka: Arc<dyn Dependency> =
            Arc::new(KafkaProbe::for_consumer(&settings.consumer_config())?);
        let (shutdown, stopping) = watch::channel(false);
        let mut consumers = JoinSet::new();
        for consumer in &service.consumers {
            let mut config = settings.consumer_config();
            config.group_id = consumer.group_id.clone();
            config.parked = Some(service.parked.clone());
            let running = run_consumer_with_metrics(
                config,
                Arc::clone(&consumer.sink),
                service.metrics.consumer.clone(),
                stopping.clone(),
            );
            let group = consumer.group_id.clone();
            consumers.spawn(async move { (group, running.await) });
        }

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
                .disable_signals()
                .listen(listener)
                .map_err(|source| address.failed(source))?
                .run();
        if let Some(signals) = stop_signals {
            let handle = server.handle();
            signals.stop_with(move || handle.stop(true));
        }
        let groups: Vec<&str> = service
            .consumers
            .iter()
            .map(|consumer| consumer.group_id.as_str())
            .collect();
        tracing::info!(
            port,
            topic = %settings.kafka_topic,
            groups = %groups.join(", "),
            "{} listening",
            service.name
        );
        Ok(Self {
            name: service.name,
            server,
            port,
            shutdown,
            consumers,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the HTTP server, which then stops the consumer (see `run_until_stopped`).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT or a handle's stop, then lets every
    /// consumer finish and commit its batch. When a consumer stops on its
    /// own (it cannot park a dead letter), stops the others and the server
    /// and returns its error, so the process exits and is restarted.
    pub async fn run_until_stopped(mut self) -> Result<(), RunError> {
        let handle = self.server.handle();
        // A set without tasks answers None at once: that branch is then
        // disabled, and the server alone is awaited.
        let first_to_end = tokio::select! {
            served = &mut self.server => {
                self.stop_consumers().await;
                tracing::info!("{} stopped", self.name);
                return Ok(served?);
            }
            Some(finished) = self.consumers.join_next() => finished,
        };
        let error = match first_to_end {
            Ok((group, Ok(()))) => RunError::ConsumerStopped(group),
            Ok((_, Err(error))) => RunError::Consumer(error),
            Err(error) => RunError::ConsumerTask(error),
        };
        tracing::error!(%error, "{} stopping", self.name);
        self.stop_consumers().await;
        // The server carries out a stop only while it is polled: the stop
        // and the server are awaited together (awaiting the stop alone
        // never returned, and the process lived on with /health at 200).
        let (_, served) = tokio::join!(handle.stop(true), &mut self.server);
        if let Err(served) = served {
            tracing::warn!(error = %served, "the HTTP server did not stop cleanly");
        }
        Err(error)
    }

    /// Tells every consumer still running to stop and waits, at most
    /// [`CONSUMER_STOP_WAIT_MS`] in all, for each to finish its batch.
    async fn stop_consumers(&mut self) {
        self.shutdown.send_replace(true);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(CONSUMER_STOP_WAIT_MS);
        loop {
            match tokio::time::timeout_at(deadline, self.consumers.join_next()).await {
                Ok(None) => return,
                Ok(Some(Ok((_, Ok(()))))) => {}
                Ok(Some(Ok((group, Err(error))))) => {
                    tracing::error!(%error, group, "consumer failed while stopping")
                }
                Ok(Some(Err(error))) => tracing::error!(%error, "consumer task ended abnormally"),
                Err(_) => {
                    tracing::warn!("a consumer did not stop in time");
                    self.consumers.abort_all();
                    return;
                }
            }
        }
    }
}

/// Republishes up to `limit` of the dead letters `handler` parked to the
/// topic, marked as replayed for it (its parked wallets take them), through
/// the replay group of `group_id` (the group that feeds `handler`).
pub async fn replay_dead_letters(
    settings: &Settings,
    group_id: &str,
    handler: &str,
    limit: usize,
) -> Result<usize, HostError> {
    let mut config = settings.consumer_config();
    config.group_id = group_id.to_owned();
    config.parked = Some(ParkedWallets::new(settings.connect_postgres().await?));
    Ok(event_bus::replay_dlq(&config, handler, limit).await?)
}

impl ReplayDlqArgs {
    /// The `replay-dlq` subcommand: replays the dead letters of each
    /// `(group, handler)` of the binary, up to the limit for each, then logs
    /// how many; returns the total.
    pub async fn run(
        &self,
        settings: &Settings,
        consumers: &[(&str, &str)],
    ) -> Result<usize, HostError> {
        let mut total = 0;
        for &(group, handler) in consumers {
            let replayed = replay_dead_letters(settings, group, handler, self.limit).await?;
            tracing::info!(replayed, group, handler, "dead letters replayed");
            total += replayed;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use event_sink::DeliveryError;
    use event_store::RecordedEvent;

    use super::*;

    /// A sink whose offsets cannot be read, for good: its consumer stops on
    /// its own at once.
    struct OffsetsGone;

    #[async_trait]
    impl EventSink for OffsetsGone {
        fn name(&self) -> &'static str {
            "offsets_gone"
        }

        async fn checkpoint(&self) -> Result<u64, DeliveryError> {
            Ok(0)
        }

        async fn deliver(&self, _batch: &[RecordedEvent]) -> Result<(), DeliveryError> {
            Ok(())
        }

        async fn stored_offsets(
            &self,
            _group: &str,
            _topic: &str,
        ) -> Result<Option<event_sink::StoredOffsets>, DeliveryError> {
            Err(DeliveryError::permanent(
                "offsets_gone",
                std::io::Error::other("the offsets table is gone"),
            ))
        }
    }

    /// Bound on the whole run: the consumer stops at once, the server right after.
    const RUN_ENDS_WITHIN: Duration = Duration::from_secs(20);

    #[tokio::test]
    async fn a_consumer_that_stops_on_its_own_ends_the_run_and_the_server() {
        // Nothing listens at these: neither is reached before the sink fails.
        let settings = Settings::for_test(
            "postgres://nobody@127.0.0.1:1/none",
            "127.0.0.1:1",
            "t",
            "g",
        );
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy(&settings.database_url)
            .expect("a lazy pool");
        let service = Service {
            name: "test-consumer",
            consumers: vec![GroupSink {
                group_id: "g".into(),
                sink: Arc::new(OffsetsGone),
            }],
            dependencies: Vec::new(),
            metrics: Metrics::new().expect("metrics"),
            parked: ParkedWallets::new(pool),
        };
        let application = Application::start(&settings, service).expect("started");
        let port = application.port();
        let ended = tokio::time::timeout(RUN_ENDS_WITHIN, application.run_until_stopped())
            .await
            .expect("the run ends, the server with it");
        assert!(matches!(ended, Err(RunError::Consumer(_))), "{ended:?}");
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "the HTTP server no longer listens"
        );
    }
}
