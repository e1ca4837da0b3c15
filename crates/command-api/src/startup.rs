//! Builds the application from configuration and runs it.

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::header;
use actix_web::{middleware, web, App, HttpServer};
use chrono::Utc;
use event_relay::dead_letters::{DeadLetterError, DeadLetterStore};
use event_store::StoreError;
use ledger::{Ledger, LedgerError};
use read_model::{ReadModel, ReadModelError};
use search_index::{SearchIndex, SearchIndexError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use transfer_process::{JournalError, IN_FLIGHT_GRACE_MS};

use crate::access::{Access, AccessConfigError};
use crate::adapters;
use crate::catch_up::Progress;
use crate::config::{Config, EventStoreKind};
use crate::http::{self, TRANSFER_REPLY};
use crate::metrics::Metrics;
use crate::publisher_status::PublisherStatus;
use crate::wallets::WalletService;
use crate::{hold_expiry, retention};

/// How long background relays get to finish their batch at shutdown.
pub const BACKGROUND_STOP_WAIT_MS: u64 = 10_000;
/// How often unfinished transfers are looked for while serving (transfer
/// process only): a transfer whose request failed midway (the store down
/// between two steps) or whose replica died is finished within this time.
pub const TRANSFER_SWEEP_INTERVAL_MS: u64 = 10_000;
/// How long the start waits, before serving, for the transfers a crash left
/// unfinished to be finished (transfer process only); past it the server
/// serves and the periodic sweep finishes them.
pub const TRANSFER_RESUME_AT_START_TIMEOUT_MS: u64 = 30_000;
/// How often the event store's head position is compared with the highest
/// one this process has seen (a store that lost events drops the cache).
pub const STORE_HEAD_CHECK_INTERVAL_MS: u64 = 1_000;

pub struct AppState {
    pub wallets: WalletService,
    pub read_model: Arc<dyn ReadModel>,
    pub ledger: Arc<dyn Ledger>,
    /// `None` when this configuration has no search index.
    pub search_index: Option<Arc<dyn SearchIndex>>,
    pub publisher: Arc<dyn PublisherStatus>,
    pub progress: Progress,
    /// The in-process relays' dead letters (embedded only).
    pub dead_letters: Option<Arc<dyn DeadLetterStore>>,
    pub metrics: Metrics,
    /// Authentication and the per-principal rate limit.
    pub access: Access,
    /// The data folder of the embedded storage's SQLite files, whose WAL
    /// checkpoints `/health` reports; `None` on the full stack.
    pub data_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Access(#[from] AccessConfigError),
    /// Settings refused by their own rules (`AccessConfigError::is_bad_setting`):
    /// exit 2, as `observability::exit_code` chooses.
    #[error("{0}")]
    Setting(#[source] observability::SettingRefused),
    #[error("WALLEX_DATA_DIR {0} is not a folder")]
    NotAFolder(String),
    /// The data folder's path is a symbolic link to nothing (hostile tester
    /// h123, F3: it was refused as "not a folder").
    #[error(
        "WALLEX_DATA_DIR {path} is a symbolic link to {target}, which does not exist: create \
         that folder, or set WALLEX_DATA_DIR to the data folder"
    )]
    DanglingLink { path: String, target: String },
    #[error("cannot create the data folder {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    DataDirLock(#[from] embedded_sqlite::DataDirLockError),
    #[error(transparent)]
    Postgres(#[from] postgres_support::PostgresError),
    #[error(transparent)]
    EventStore(#[from] StoreError),
    #[error(transparent)]
    EventStoreChoice(#[from] event_store_choice::ChoiceError),
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    SearchIndex(#[from] SearchIndexError),
    #[error(transparent)]
    Lock(#[from] wallet_lock::LockError),
    /// The data folder records transfers of another `TRANSFERS` mode than
    /// the one asked for (the folder's state: exit 1).
    #[error("TRANSFERS: {0}")]
    TransferMode(&'static str),
    #[error(transparent)]
    TransferJournal(#[from] JournalError),
    #[error(transparent)]
    Bus(#[from] event_bus::BusError),
    #[error(transparent)]
    DeadLetters(#[from] DeadLetterError),
    #[error("reading a projection's checkpoint: {0}")]
    ProjectionCheckpoint(#[source] event_sink::DeliveryError),
    /// Projection files hold events the event log lacks (embedded default).
    #[error(
        "events.db ends at position {head}, but {}: the event log is older than what was \
         derived from it (restored from an older copy, cut short, or its -wal file damaged: \
         SQLite reads a WAL up to its first damaged frame). This refusal left the files \
         already in the data folder as they were (but an events.db that was missing or empty, \
         which now holds an empty log's tables): keep a copy of it as it is, -wal files \
         included. Put back the events.db (with its -wal file) that goes with them; or, if \
         this event log is the one to keep, move each file named here (with its -wal and -shm \
         files) out of the data folder, and it is built again from the log at the next start",
        ProjectionAhead::listed(ahead)
    )]
    LogBehindProjections {
        head: u64,
        ahead: Vec<ProjectionAhead>,
    },
    /// The transfer journal says wallet events are stored that the event
    /// log lacks (embedded default, `TRANSFERS=process`).
    #[error(
        "events.db ends at position {head}, but {journal} records transfer steps stored up to \
         position {recorded}: the event log is older than the transfer journal (restored from \
         an older copy, cut short, or its -wal file damaged: SQLite reads a WAL up to its first \
         damaged frame). This refusal left the files already in the data folder as they were: \
         keep a copy of it as it is, -wal files included. Put back the events.db (with its \
         -wal file) that goes with it. The journal is not derived from the log and cannot be \
         built again from it: moving it out would forget the idempotency keys of the \
         transfers it finished and leave those it had started half done, so keep a copy of it \
         either way"
    )]
    LogBehindJournal {
        head: u64,
        /// The journal's file in the data folder.
        journal: &'static str,
        /// The greatest log position its records follow.
        recorded: u64,
    },
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Listen(#[from] observability::ListenError),
}

impl StartupError {
    /// A combination of settings this configuration cannot run with (one it
    /// needs is missing, or a transfer mode its store cannot give), refused
    /// as a value by its own rules is: [`StartupError::Setting`], exit 2.
    pub fn refused_settings(refusal: &'static str) -> Self {
        Self::Setting(observability::SettingRefused::new(refusal))
    }

    /// `refusal` as a start error: settings refused by their own rules
    /// become [`StartupError::Setting`] (exit 2), a key file the machine
    /// cannot give [`StartupError::Access`] (exit 1).
    pub fn from_access(refusal: AccessConfigError) -> Self {
        if refusal.is_bad_setting() {
            Self::Setting(observability::SettingRefused::new(refusal))
        } else {
            Self::Access(refusal)
        }
    }
}

pub struct Application {
    server: Server,
    port: u16,
    shutdown: watch::Sender<bool>,
    background: Vec<JoinHandle<()>>,
    /// Released once the relays have stopped and the folder's files are
    /// closed (embedded only).
    data_dir_lock: Option<embedded_sqlite::DataDirLock>,
}

/// Finishes unfinished transfers at start-up, beside serving (never before
/// it: one stuck transfer must not keep the API down), then every
/// [`TRANSFER_SWEEP_INTERVAL_MS`] until the application stops. The start-up
/// sweep takes every transfer initiated before the start (no request of this
/// process runs them); the later ones leave those initiated within
/// [`IN_FLIGHT_GRACE_MS`] to their requests. Running beside a request's own run
/// of a transfer (another replica's, say) would still be harmless: each step
/// appends at the version it read, so one of them wins.
async fn sweep_transfers(state: web::Data<AppState>, mut stopping: watch::Receiver<bool>) {
    let interval = Duration::from_millis(TRANSFER_SWEEP_INTERVAL_MS);
    let mut initiated_before = Utc::now();
    loop {
        match state
            .wallets
            .resume_unfinished_transfers(initiated_before)
            .await
        {
            Ok(resumption) if resumption.resumed + resumption.failed > 0 => tracing::warn!(
                resumed = resumption.resumed,
                failed = resumption.failed,
                quarantined = resumption.quarantined,
                "unfinished transfers swept"
            ),
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "unfinished transfers could not be listed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopping.changed() => return,
        }
        initiated_before = Utc::now() - chrono::Duration::milliseconds(IN_FLIGHT_GRACE_MS);
    }
}

/// Finishes, before the first request is served, the transfers (and the
/// captures to another wallet) a crash left with their payer debited and
/// their payee not credited yet. A request meeting such a pair could close
/// both wallets at 0.00, and the reversal of a transfer whose payee is closed
/// would then bring the money back into a closed payer, where nothing can
/// take it out. Bounded by [`TRANSFER_RESUME_AT_START_TIMEOUT_MS`]; what it
/// leaves, the periodic sweep finishes.
async fn resume_before_serving(state: &AppState) {
    let resumed = tokio::time::timeout(
        Duration::from_millis(TRANSFER_RESUME_AT_START_TIMEOUT_MS),
        state.wallets.resume_unfinished_transfers(Utc::now()),
    )
    .await;
    match resumed {
        Ok(Ok(resumption)) => tracing::info!(
            resumed = resumption.resumed,
            failed = resumption.failed,
            quarantined = resumption.quarantined,
            "unfinished transfers resumed before serving"
        ),
        Ok(Err(error)) => {
            tracing::error!(%error, "unfinished transfers could not be listed before serving")
        }
        Err(_) => tracing::warn!(
            timeout_ms = TRANSFER_RESUME_AT_START_TIMEOUT_MS,
            "unfinished transfers not all resumed before serving; the sweep goes on"
        ),
    }
}

/// Compares the event store's head with the highest position seen every
/// [`STORE_HEAD_CHECK_INTERVAL_MS`], and drops the wallet cache when the store
/// went backwards, until the application stops.
async fn watch_store_head(state: web::Data<AppState>, mut stopping: watch::Receiver<bool>) {
    let interval = Duration::from_millis(STORE_HEAD_CHECK_INTERVAL_MS);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopping.changed() => return,
        }
        if let Err(error) = state.wallets.check_store_head().await {
            tracing::warn!(%error, "the event store's head could not be read");
        }
    }
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        // First: a SIGINT or SIGTERM during the start stops the server
        // gracefully once it runs, instead of killing the process.
        let mut stop_signals = observability::StopSignals::install();
        // Before any connection: a configuration that must not serve stops here.
        let plan = Access::from_config(&config).map_err(StartupError::from_access)?;
        let loopback_hosts_only = plan.loopback_hosts_only();
        if plan.open_by_default {
            tracing::warn!(
                host = %plan.host,
                "authentication is off (no AUTH_* set): every caller may do everything, so \
                 command-api listens on loopback only; set AUTH_JWT_SECRET or \
                 AUTH_JWT_PUBLIC_KEYS to serve other addresses"
            );
        }
        // Before any storage opens or task starts: a port in use (or a host
        // that is no address) stops the start with nothing to wind down.
        let address = observability::ListenAddress {
            host: plan.host.clone(),
            port: config.port,
        };
        let (listener, port) = address.bind()?;
        let metrics = Metrics::new()?;
        let (shutdown, stopping) = watch::channel(false);
        let building = adapters::build(&config, &metrics, stopping.clone());
        let mut adapters = if config.event_store_kind() == EventStoreKind::Embedded {
            // Files, no server to wait for: a signal is kept for the server.
            building.await?
        } else {
            // Waits for PostgreSQL (and KurrentDB): a signal ends them.
            observability::unless_stopped(stop_signals.as_mut(), building).await?
        };
        let mode = adapters.store.kind();
        let retention_hours = config.idempotency_retention_hours;
        retention::purge_and_log(&*adapters.store, retention_hours).await;
        adapters
            .background
            .push(tokio::spawn(retention::purge_periodically(
                Arc::clone(&adapters.store),
                retention_hours,
                stopping.clone(),
            )));
        let claims_expire_after = adapters
            .store
            .idempotent_responses_expire()
            .then(|| retention::claims_expire_after(retention_hours));
        let mut wallets = WalletService::new(adapters.store, adapters.lock, metrics.clone())
            .with_cache_mib(config.wallet_cache_mib);
        let transfer_process = adapters.transfer_journal.is_some();
        if let Some(journal) = adapters.transfer_journal {
            wallets = wallets.with_transfer_process(journal, TRANSFER_REPLY, claims_expire_after);
        }
        let state = web::Data::new(AppState {
            wallets,
            read_model: adapters.read_model,
            ledger: adapters.ledger,
            search_index: adapters.search_index,
            publisher: adapters.publisher,
            progress: adapters.progress,
            dead_letters: adapters.dead_letters,
            metrics,
            access: plan.access,
            data_dir: adapters
                .data_dir_lock
                .as_ref()
                .map(|_| config.data_dir.clone()),
        });
        adapters.background.push(tokio::spawn(watch_store_head(
            state.clone(),
            stopping.clone(),
        )));
        adapters
            .background
            .push(tokio::spawn(hold_expiry::sweep_periodically(
                state.clone(),
                stopping.clone(),
            )));
        if transfer_process {
            observability::unless_stopped(stop_signals.as_mut(), resume_before_serving(&state))
                .await;
            adapters
                .background
                .push(tokio::spawn(sweep_transfers(state.clone(), stopping)));
        }
        let authenticated = state.access.verifies();
        let document = http::document(authenticated);
        if !config.allowed_origins.is_empty() {
            tracing::info!(
                origins = %config.allowed_origins.join(", "),
                "commands are served from these origins too (ALLOWED_ORIGINS)"
            );
        }
        let origin_policy = http::OriginPolicy {
            loopback_hosts_only,
            allowed_origins: config.allowed_origins.clone().into(),
        };
        let body_read_timeout =
            http::BodyReadTimeout(Duration::from_secs(config.body_read_timeout_seconds));
        let documented_queries = Arc::new(http::DocumentedQueries::of(&document));
        let route_spellings = Arc::new(http::RouteSpellings::of(&document));
        let mut server = HttpServer::new(move || {
            let document = document.clone();
            let metrics = state.metrics.clone();
            let documented_queries = Arc::clone(&documented_queries);
            let route_spellings = Arc::clone(&route_spellings);
            let origin_policy = origin_policy.clone();
            App::new()
                .wrap_fn(http::docs_not_found_body)
                .wrap_fn(move |request, service| {
                    http::guard_origin(request, service, &origin_policy)
                })
                .wrap_fn(http::head_as_get)
                .wrap_fn(move |request, service| {
                    http::refuse_undocumented_query(request, service, &documented_queries)
                })
                .wrap_fn(http::refuse_undecodable_query)
                .wrap_fn(http::correlate)
                // Outside every middleware that answers for the handler, so
                // their refusals are counted too (h104 F4); inside the two
                // that respell the path, so a route is labelled as matched.
                .wrap_fn(move |request, service| http::measure(request, service, metrics.clone()))
                // The router and every check see a route's fixed words as
                // documented, as the seed's Express router matched them
                // (`caseSensitive: false`): `/Wallets/w1` is `/wallets/w1`.
                .wrap_fn(move |request, service| {
                    http::spell_as_documented(request, service, &route_spellings)
                })
                // Every check and the router see the path without
                // a trailing slash, as the seed's Express router matched it
                // (`strict: false`): `POST /wallets/` is `POST /wallets`.
                .wrap_fn(http::trim_trailing_slash)
                // No answer is kept by a browser's or a proxy's cache: they
                // carry balances and histories (RFC 9111 §5.2.2.5).
                .wrap(
                    middleware::DefaultHeaders::new()
                        .add((header::CACHE_CONTROL, http::CACHE_CONTROL)),
                )
                // Outermost of all: whatever answers a chunked request, its
                // connection is closed if the body was left unfinished.
                .wrap_fn(http::hold_unread_body)
                .app_data(state.clone())
                .app_data(body_read_timeout)
                .configure(|config| http::routes(config, document))
        })
        .client_request_timeout(Duration::from_millis(http::HEAD_READ_TIMEOUT_MS))
        .max_connections(config.http_connections_per_worker)
        .shutdown_timeout(config.shutdown_timeout_seconds)
        .disable_signals();
        if let Some(workers) = config.http_workers {
            server = server.workers(workers);
        }
        let server = server
            .listen(listener)
            .map_err(|source| address.failed(source))?
            .run();
        if let Some(signals) = stop_signals {
            let handle = server.handle();
            signals.stop_with(move || handle.stop(true));
        }
        tracing::info!(host = %plan.host, port, mode, authenticated, "command-api listening");
        Ok(Self {
            server,
            port,
            shutdown,
            background: adapters.background,
            data_dir_lock: adapters.data_dir_lock,
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
        // The HTTP workers and the pooled readers close their files on
        // threads of their own, which may be after the server's stop has
        // answered: the folder is handed over once they have.
        if let Some(lock) = self.data_dir_lock {
            lock.release_once_closed().await;
        }
        tracing::info!("command-api stopped");
        served
    }
}

/// A projection file that has applied events past the event log's head.
#[derive(Debug)]
pub struct ProjectionAhead {
    /// Its file in the data folder.
    pub file: &'static str,
    /// The position of the last event it applied.
    pub applied: u64,
}

impl ProjectionAhead {
    /// `ledger.db has applied it up to position 7, read_model.db up to position 9`.
    fn listed(ahead: &[ProjectionAhead]) -> String {
        ahead
            .iter()
            .enumerate()
            .map(|(index, projection)| {
                let verb = if index == 0 { " has applied it" } else { "" };
                format!(
                    "{}{verb} up to position {}",
                    projection.file, projection.applied
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}
