//! Builds the application from configuration and runs it.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use event_relay::{run_relay, EventSink, RelayLimits};
use event_store::{EmbeddedEventStore, EventStore, StoreError};
use ledger::{EmbeddedLedger, Ledger, LedgerError};
use read_model::{EmbeddedReadModel, ReadModel, ReadModelError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use wallet_lock::InProcessWalletLock;

use crate::config::Config;
use crate::http;
use crate::metrics::Metrics;
use crate::wallets::WalletService;

/// How long background relays get to finish their batch at shutdown.
pub const BACKGROUND_STOP_WAIT_MS: u64 = 10_000;

pub struct AppState {
    pub wallets: WalletService,
    pub read_model: Arc<dyn ReadModel>,
    /// Global position the read model has reached.
    pub projection_progress: watch::Receiver<u64>,
    pub ledger: Arc<dyn Ledger>,
    /// Global position the ledger has reached.
    pub ledger_progress: watch::Receiver<u64>,
    pub metrics: Metrics,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot create the data folder {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    EventStore(#[from] StoreError),
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

pub struct Application {
    server: Server,
    port: u16,
    shutdown: watch::Sender<bool>,
    background: Vec<JoinHandle<()>>,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartupError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let metrics = Metrics::new()?;
        let store: Arc<dyn EventStore> = Arc::new(EmbeddedEventStore::open(&config.data_dir)?);
        let read_model = Arc::new(EmbeddedReadModel::open(&config.data_dir)?);
        let ledger = Arc::new(EmbeddedLedger::open(&config.data_dir)?);

        let (shutdown, stopping) = watch::channel(false);
        let (projection_sender, projection_progress) = watch::channel(0);
        let (ledger_sender, ledger_progress) = watch::channel(0);
        let sinks: Vec<(Arc<dyn EventSink>, watch::Sender<u64>)> = vec![
            (read_model.clone(), projection_sender),
            (ledger.clone(), ledger_sender),
        ];
        let background = sinks
            .into_iter()
            .map(|(sink, progress)| {
                tokio::spawn(run_relay(
                    Arc::clone(&store),
                    sink,
                    RelayLimits::default(),
                    progress,
                    stopping.clone(),
                ))
            })
            .collect();

        let state = web::Data::new(AppState {
            wallets: WalletService::new(
                Arc::clone(&store),
                Arc::new(InProcessWalletLock::default()),
                metrics.clone(),
            ),
            read_model,
            projection_progress,
            ledger,
            ledger_progress,
            metrics,
        });
        let listener = TcpListener::bind((config.host.as_str(), config.port))?;
        let port = listener.local_addr()?.port();
        let mut server = HttpServer::new(move || {
            let metrics = state.metrics.clone();
            App::new()
                .wrap_fn(move |request, service| http::measure(request, service, metrics.clone()))
                .wrap_fn(http::correlate)
                .app_data(state.clone())
                .configure(http::routes)
        })
        .shutdown_timeout(config.shutdown_timeout_seconds);
        if let Some(workers) = config.http_workers {
            server = server.workers(workers);
        }
        let server = server.listen(listener)?.run();
        tracing::info!(port, data_dir = %config.data_dir.display(), "command-api listening (embedded)");
        Ok(Self {
            server,
            port,
            shutdown,
            background,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops accepting requests, finishes those in flight, then stops the relays.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT or a handle's stop, then stops the relays.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.shutdown.send_replace(true);
        for task in self.background {
            if tokio::time::timeout(Duration::from_millis(BACKGROUND_STOP_WAIT_MS), task)
                .await
                .is_err()
            {
                tracing::warn!("a relay did not stop in time");
            }
        }
        tracing::info!("command-api stopped");
        served
    }
}
