//! Chooses one implementation per port from the configuration, in one place.
//!
//! - Embedded (no configuration): SQLite files under `WALLEX_DATA_DIR`, and the
//!   relays that feed the ledger and the read model run in this process.
//! - PostgreSQL (`DATABASE_URL`): the event store, ledger and read model are
//!   tables in PostgreSQL, fed by the separate `outbox-relay`,
//!   `ledger-consumer` and `projection-consumer` processes through Kafka.
//!
//! Transfers run as the transfer process when the store cannot append to two
//! streams at once (KurrentDB), or when `TRANSFERS=process` asks for it on the
//! embedded store; its journal lives on the same storage as the events.
//!
//! Either way the lock is Redis when `REDIS_URL` is set, in-process otherwise.
//! Transaction history and search: embedded, a SQLite index fed by its own
//! in-process relay; distributed, Elasticsearch when `ELASTICSEARCH_URL` is
//! set (filled by `projection-consumer`), none otherwise.

use std::sync::Arc;

use embedded_sqlite::DataDirLock;
use event_bus::PUBLISHER_CHECKPOINT_NAME_DEFAULT;
use event_relay::dead_letters::{DeadLetterStore, EmbeddedDeadLetters};
use event_relay::{run_relay, RelayLimits};
use event_sink::EventSink;
use event_store::{EmbeddedEventStore, EventStore};
use ledger::{EmbeddedLedger, Ledger, PostgresLedger};
use read_model::{EmbeddedReadModel, PostgresReadModel, ReadModel};
use search_index::{ElasticsearchIndex, EmbeddedSearchIndex, SearchIndex};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use transfer_process::{EmbeddedTransferJournal, TransferJournal};
use wallet_lock::{InProcessWalletLock, RedisLockConfig, RedisWalletLock, WalletLock};

use crate::catch_up::{ConsumerGroup, Progress, Watermark};
use crate::config::{Config, EventStoreKind, TransferMode};
use crate::metrics::Metrics;
use crate::publisher_status::{InProcessRelayStatus, KafkaRelayStatus, PublisherStatus};
use crate::relay_lag::LagMeasuredSink;
use crate::startup::{ProjectionAhead, StartupError};

/// Permissions of a data folder command-api creates (an existing one keeps
/// its own): its owner only.
#[cfg(unix)]
const DATA_DIR_MODE: u32 = 0o700;

pub struct Adapters {
    pub store: Arc<dyn EventStore>,
    /// `Some` when transfers run as the transfer process.
    pub transfer_journal: Option<Arc<dyn TransferJournal>>,
    pub lock: Arc<dyn WalletLock>,
    pub read_model: Arc<dyn ReadModel>,
    pub ledger: Arc<dyn Ledger>,
    /// `None` in the distributed mode without `ELASTICSEARCH_URL`.
    pub search_index: Option<Arc<dyn SearchIndex>>,
    pub publisher: Arc<dyn PublisherStatus>,
    pub progress: Progress,
    /// Where the in-process relays park what a sink refuses for good
    /// (embedded only: the consumers of the distributed mode park on Kafka).
    pub dead_letters: Option<Arc<dyn DeadLetterStore>>,
    pub background: Vec<JoinHandle<()>>,
    /// The embedded default's hold on its data folder, for as long as the
    /// server runs: a second server on the same folder is refused at start.
    pub data_dir_lock: Option<DataDirLock>,
}

/// The adapters of `config`; the in-process relays (embedded) report their
/// lag into `metrics`.
pub async fn build(
    config: &Config,
    metrics: &Metrics,
    stopping: watch::Receiver<bool>,
) -> Result<Adapters, StartupError> {
    let lock = lock(config)?;
    match config.event_store_kind() {
        EventStoreKind::Embedded => embedded(config, lock, metrics, stopping).await,
        EventStoreKind::Postgres | EventStoreKind::Kurrentdb => distributed(config, lock).await,
    }
}

fn lock(config: &Config) -> Result<Arc<dyn WalletLock>, StartupError> {
    Ok(match &config.redis_url {
        Some(url) => Arc::new(RedisWalletLock::connect(RedisLockConfig {
            key_prefix: config.redis_key_prefix.clone(),
            ..RedisLockConfig::new(url)
        })?),
        None => Arc::new(InProcessWalletLock::default()),
    })
}

/// Creates the data folder (and its parents) if missing, readable by this
/// user only on Unix: it holds every wallet's history.
fn create_data_dir(path: &std::path::Path) -> Result<(), StartupError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DATA_DIR_MODE);
    builder.create(path).map_err(|source| {
        // A file, `a/file/` or a dangling link: something that is not a folder is there.
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            // A link to nothing: `exists` follows the link, `read_link` does not.
            if let (false, Ok(target)) = (path.exists(), std::fs::read_link(path)) {
                return StartupError::DanglingLink {
                    path: path.display().to_string(),
                    target: target.display().to_string(),
                };
            }
            return StartupError::NotAFolder(path.display().to_string());
        }
        StartupError::DataDir {
            path: path.display().to_string(),
            source,
        }
    })
}

async fn embedded(
    config: &Config,
    lock: Arc<dyn WalletLock>,
    metrics: &Metrics,
    stopping: watch::Receiver<bool>,
) -> Result<Adapters, StartupError> {
    let ignored = config.ignored_by_embedded();
    if !ignored.is_empty() {
        tracing::warn!(
            settings = %ignored.join(", "),
            data_dir = %config.data_dir.display(),
            "the event store is the embedded one (EVENT_STORE): these settings of the \
             distributed mode are not used, and everything is stored under the data folder"
        );
    }
    create_data_dir(&config.data_dir)?;
    let data_dir_lock = DataDirLock::acquire(&config.data_dir)?;
    let store: Arc<dyn EventStore> = Arc::new(EmbeddedEventStore::open(&config.data_dir)?);
    let transfer_journal: Option<Arc<dyn TransferJournal>> =
        if transfers_run_as_process(config.transfers, store.appends_streams_atomically())? {
            let journal = EmbeddedTransferJournal::open(&config.data_dir)?;
            if let Err(refusal) = refuse_a_journal_ahead_of_the_log(store.as_ref(), &journal).await
            {
                keep_open_until_exit((store, journal));
                return Err(refusal);
            }
            Some(Arc::new(journal))
        } else {
            refuse_a_kept_journal(&config.data_dir).await?;
            None
        };
    let read_model = Arc::new(EmbeddedReadModel::open(&config.data_dir)?);
    let ledger = Arc::new(EmbeddedLedger::open(&config.data_dir)?);
    let search_index = Arc::new(EmbeddedSearchIndex::open(&config.data_dir)?);
    let dead_letters: Arc<dyn DeadLetterStore> =
        Arc::new(EmbeddedDeadLetters::open(&config.data_dir)?);

    let (read_model_sender, read_model_progress) = watch::channel(0);
    let (ledger_sender, ledger_progress) = watch::channel(0);
    let (search_index_sender, search_index_progress) = watch::channel(0);
    let refused = refuse_projections_ahead_of_the_log(
        store.as_ref(),
        dead_letters.as_ref(),
        [
            (
                read_model.as_ref() as &dyn EventSink,
                read_model::EMBEDDED_FILE,
            ),
            (ledger.as_ref(), ledger::EMBEDDED_FILE),
            (search_index.as_ref(), search_index::EMBEDDED_FILE),
        ],
    )
    .await;
    if let Err(refusal) = refused {
        keep_open_until_exit((
            store,
            transfer_journal,
            read_model,
            ledger,
            search_index,
            dead_letters,
        ));
        return Err(refusal);
    }
    let sinks: Vec<(Arc<dyn EventSink>, watch::Sender<u64>)> = vec![
        (read_model.clone(), read_model_sender),
        (ledger.clone(), ledger_sender),
        (search_index.clone(), search_index_sender),
    ];
    let background = sinks
        .into_iter()
        .map(|(sink, progress)| {
            let lag = metrics
                .relay_event_lag_seconds
                .with_label_values(&[sink.name()]);
            tokio::spawn(run_relay(
                Arc::clone(&store),
                Arc::new(LagMeasuredSink::new(sink, lag)),
                Some(Arc::clone(&dead_letters)),
                embedded_relay_limits(),
                progress,
                stopping.clone(),
            ))
        })
        .collect();
    let progress = Progress::new(
        Some(Watermark::InProcess(ledger_progress)),
        Some(Watermark::InProcess(read_model_progress)),
        Some(Watermark::InProcess(search_index_progress)),
    );
    let publisher = InProcessRelayStatus::new(Arc::clone(&store), progress.in_process());
    Ok(Adapters {
        publisher: Arc::new(publisher),
        store,
        transfer_journal,
        lock,
        read_model,
        ledger,
        search_index: Some(search_index),
        progress,
        dead_letters: Some(dead_letters),
        background,
        data_dir_lock: Some(data_dir_lock),
    })
}

/// Keeps the files a start refused on what it read open until the process
/// exits. When the last connection to a file closes, SQLite copies the
/// file's WAL into it and deletes the WAL; a start refused on a log that
/// ends early (a damaged `-wal` reads so too: SQLite reads a WAL up to its
/// first damaged frame) would fold what it could read into `events.db` and
/// delete the rest, the only copy of what followed (tester h98). Left open,
/// the files stay as the refusal found them for the operator it addresses.
fn keep_open_until_exit<T>(opened: T) {
    std::mem::forget(opened);
}

/// Refuses to start when the transfer journal records a step stored past
/// the event log's head: the log is older than the journal, which would
/// answer retries of transfers the log lacks and fail to finish the open
/// ones. Unlike a projection, the journal cannot be built again from the log.
async fn refuse_a_journal_ahead_of_the_log(
    store: &dyn EventStore,
    journal: &dyn TransferJournal,
) -> Result<(), StartupError> {
    let head = store.head_position().await?;
    let recorded = journal.log_position().await?;
    if recorded > head {
        return Err(StartupError::LogBehindJournal {
            head,
            journal: transfer_process::JOURNAL_FILE,
            recorded,
        });
    }
    Ok(())
}

/// Refuses to start when a projection has applied events past the event
/// log's head, or parked some there as dead letters (its relay reads on from
/// the furthest of the two): the log is older than the files derived from it
/// (restored from an older copy, or cut short by damage). Served anyway, new
/// events would take positions the projection counts as applied, and it
/// would never show them.
async fn refuse_projections_ahead_of_the_log(
    store: &dyn EventStore,
    dead_letters: &dyn DeadLetterStore,
    projections: [(&dyn EventSink, &'static str); 3],
) -> Result<(), StartupError> {
    let head = store.head_position().await?;
    let mut ahead = Vec::new();
    let mut parked_through = 0;
    for (projection, file) in projections {
        let applied = projection
            .checkpoint()
            .await
            .map_err(StartupError::ProjectionCheckpoint)?;
        if applied > head {
            ahead.push(ProjectionAhead { file, applied });
        }
        parked_through = parked_through.max(dead_letters.parked_through(projection.name()).await?);
    }
    if parked_through > head {
        ahead.push(ProjectionAhead {
            file: event_relay::dead_letters::EMBEDDED_FILE,
            applied: parked_through,
        });
    }
    if ahead.is_empty() {
        Ok(())
    } else {
        Err(StartupError::LogBehindProjections { head, ahead })
    }
}

/// The event store of the configuration; the ledger, read model and relay
/// checkpoint in PostgreSQL either way.
async fn distributed(config: &Config, lock: Arc<dyn WalletLock>) -> Result<Adapters, StartupError> {
    let url = config.database_url.as_deref().ok_or_else(|| {
        StartupError::refused_settings("DATABASE_URL must be set for this configuration")
    })?;
    // A server that does not answer yet is waited for (a bounded time).
    let pool = postgres_support::StartupWait::default()
        .until_ready(
            "postgres",
            postgres_support::PostgresError::is_transient,
            || {
                postgres_support::connect_reads(
                    url,
                    config.database_connections_max,
                    config.database_statement_timeout_ms,
                )
            },
        )
        .await?;
    let opened = event_store_choice::open(
        config.event_store_kind(),
        &pool,
        config.kurrentdb_url.as_deref(),
    )
    .await?;
    let process =
        transfers_run_as_process(config.transfers, opened.store.appends_streams_atomically())?;
    let transfer_journal = match (process, opened.journal) {
        (false, _) => None,
        (true, Some(journal)) => Some(journal),
        (true, None) => {
            return Err(StartupError::refused_settings(
                "TRANSFERS: the transfer process has no PostgreSQL journal: TRANSFERS must be \
                 atomic",
            ))
        }
    };
    let store = opened.store;
    let publisher = KafkaRelayStatus::new(
        Arc::clone(&store),
        pool.clone(),
        config.kafka_brokers.as_deref(),
        &config.kafka_topic,
    )?;
    let search_index = elasticsearch(config)?;
    let consumer_group = |group: &str| {
        ConsumerGroup::new(
            pool.clone(),
            PUBLISHER_CHECKPOINT_NAME_DEFAULT,
            &config.kafka_topic,
            group,
        )
    };
    let search_group = search_index::consumer_group(&config.projection_consumer_group);
    let searched = search_index.as_ref().map(|index| {
        let group = consumer_group(&search_group).searching(Arc::clone(index));
        Watermark::ConsumerGroup(Arc::new(group))
    });
    let group_watermark =
        |group: &str| Some(Watermark::ConsumerGroup(Arc::new(consumer_group(group))));
    let progress = Progress::new(
        group_watermark(&config.ledger_consumer_group),
        group_watermark(&config.projection_consumer_group),
        searched,
    );
    Ok(Adapters {
        store,
        transfer_journal,
        lock,
        read_model: Arc::new(PostgresReadModel::new(pool.clone())),
        ledger: Arc::new(PostgresLedger::new(pool)),
        search_index,
        publisher: Arc::new(publisher),
        progress,
        dead_letters: None,
        background: Vec::new(),
        data_dir_lock: None,
    })
}

/// Whether transfers run as the transfer process: when `TRANSFERS` asks for
/// it, or when the store cannot append to two streams at once (then asking
/// for atomic transfers is refused rather than half-written transfers risked).
pub fn transfers_run_as_process(
    mode: Option<TransferMode>,
    store_appends_atomically: bool,
) -> Result<bool, StartupError> {
    match (mode, store_appends_atomically) {
        (Some(TransferMode::Process), _) | (None, false) => Ok(true),
        (Some(TransferMode::Atomic), false) => Err(StartupError::refused_settings(
            "TRANSFERS: this event store cannot append to two wallets at once: TRANSFERS must be \
             process",
        )),
        (Some(TransferMode::Atomic) | None, true) => Ok(false),
    }
}

/// Stops an atomic start on a data folder whose transfer journal records
/// transfers (it was run with `TRANSFERS=process`): the atomic path never
/// reads the journal, so an unfinished transfer there would stay unfinished
/// (a later process start would finish it into wallets closed meanwhile) and
/// a retried key of a finished one would run its transfer again.
async fn refuse_a_kept_journal(data_dir: &std::path::Path) -> Result<(), StartupError> {
    if !EmbeddedTransferJournal::kept_in(data_dir) {
        return Ok(());
    }
    if EmbeddedTransferJournal::open(data_dir)?
        .holds_transfers()
        .await?
    {
        return Err(StartupError::TransferMode(
            "this data folder's transfers.db records transfers run with TRANSFERS=process: \
             keep TRANSFERS=process for it (the atomic path reads neither their idempotency \
             keys nor the unfinished ones)",
        ));
    }
    Ok(())
}

/// A client only: nothing is sent until a request needs the server, so a
/// search server that is down does not keep the API from taking commands.
fn elasticsearch(config: &Config) -> Result<Option<Arc<dyn SearchIndex>>, StartupError> {
    let Some(url) = config.elasticsearch_url.as_deref() else {
        tracing::warn!(
            "ELASTICSEARCH_URL is not set: transaction histories and searches answer 503 \
             'not configured' (projection-consumer fills the index command-api reads them from)"
        );
        return Ok(None);
    };
    let index = ElasticsearchIndex::connect_with_timeout(
        url,
        &config.elasticsearch_index_prefix,
        config.elasticsearch_request_timeout_ms,
    )?;
    Ok(Some(Arc::new(index)))
}

/// Wait of the in-process relays after a wake-up before a projection's batch
/// is closed, and under a steady load the least time between the starts of
/// two batches ([`RelayLimits::linger_ms`]): a batch (one transaction)
/// carries more events, so fewer commits rewrite the same pages. On the
/// benchmark's mix the projections wrote 1.35 KiB per operation with their
/// batches spaced by it, 2.2 KiB when each batch began right after the
/// last, and the projections' lag p99 stayed within 50 ms. 45 and 60 ms
/// wrote 4 and 6 % fewer bytes per operation in all but put the lag p99 in
/// the 100 ms bucket, the bound, with no room left (bench/README.md).
pub const EMBEDDED_RELAY_LINGER_MS: u64 = 30;
/// Events in one batch of an in-process relay, so in one projection transaction.
pub const EMBEDDED_RELAY_BATCH_MAX: usize = 1_000;

/// The limits of the in-process relays of the embedded default.
fn embedded_relay_limits() -> RelayLimits {
    RelayLimits {
        linger_ms: EMBEDDED_RELAY_LINGER_MS,
        batch_size_max: EMBEDDED_RELAY_BATCH_MAX,
        ..RelayLimits::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_run_as_the_process_when_asked_or_when_the_store_needs_it() {
        let process = Some(TransferMode::Process);
        let atomic = Some(TransferMode::Atomic);
        assert!(!transfers_run_as_process(None, true).expect("atomic store"));
        assert!(transfers_run_as_process(None, false).expect("one stream at a time"));
        assert!(transfers_run_as_process(process, true).expect("asked for"));
        assert!(transfers_run_as_process(process, false).expect("asked for"));
        assert!(!transfers_run_as_process(atomic, true).expect("asked for"));
        assert!(matches!(
            transfers_run_as_process(atomic, false),
            Err(StartupError::Setting(_))
        ));
    }
}
