//! `command-api replay-dead-letters`: the events the in-process relays parked
//! (a sink refused them for good) handed back to their sinks, once what
//! refused them is fixed (a newer build that reads their schema version).
//!
//! A replay is safe beside a running `command-api` on the same folder.
//! SQLite serialises the two processes' writes (each waits out the other's
//! lock), the sinks skip what they have taken before, and a dead letter is
//! removed only after its sink took it, while the running relays read the
//! parked wallets again for every batch; so a wallet's new events stay
//! parked behind its letters until the last of them is taken.
//!
//! With no server on the folder, the replay takes the folder's lock for its
//! run (no server starts beside it) and brings the files' schemas up to date
//! as a server would. With one running, it changes no schema of the folder
//! ([`embedded_sqlite::forbid_migrations`]): a server of an earlier version
//! could not read its files after that, so a file whose schema is older than
//! this build's is refused, naming what to do (a newer one always is).

use std::sync::Arc;

use embedded_sqlite::{forbid_migrations, DataDirLock, DataDirLockError};
use event_relay::dead_letters::{DeadLetterError, EmbeddedDeadLetters};
use event_relay::{replay_dead_letters, RelayError, ReplayOutcome};
use event_sink::EventSink;
use ledger::EmbeddedLedger;
use read_model::EmbeddedReadModel;
use search_index::EmbeddedSearchIndex;

use crate::config::{Config, EventStoreKind, RelaySink, ReplayDeadLettersArgs};
use crate::startup::StartupError;

/// Why a replay did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(
        "replay-dead-letters serves the embedded store's in-process relays; on PostgreSQL or \
         KurrentDB, run ledger-consumer or projection-consumer replay-dlq"
    )]
    NotEmbedded,
    #[error("the data folder {0} does not exist or is not a folder: set WALLEX_DATA_DIR to the folder of the service whose dead letters to replay")]
    NoDataDir(String),
    #[error("cannot open a sink: {0}")]
    Open(#[source] StartupError),
    #[error(transparent)]
    Lock(DataDirLockError),
    #[error(transparent)]
    DeadLetters(#[from] DeadLetterError),
    #[error("the replay stopped: {0}")]
    Relay(#[from] RelayError),
}

/// Replays up to `args.limit` dead letters of each sink asked for, in
/// ledger, read model, search index order; how each went.
///
/// # Errors
/// Not the embedded store, no data folder, or a sink or the dead-letter
/// store failing (a transient refusal stops the replay; run it again).
pub async fn replay(
    config: &Config,
    args: &ReplayDeadLettersArgs,
) -> Result<Vec<(&'static str, ReplayOutcome)>, ReplayError> {
    if config.event_store_kind() != EventStoreKind::Embedded {
        return Err(ReplayError::NotEmbedded);
    }
    if !config.data_dir.is_dir() {
        return Err(ReplayError::NoDataDir(
            config.data_dir.display().to_string(),
        ));
    }
    let _lock = match DataDirLock::acquire(&config.data_dir) {
        Ok(lock) => Some(lock),
        Err(DataDirLockError::InUse { .. }) => {
            forbid_migrations(&config.data_dir);
            None
        }
        Err(error) => return Err(ReplayError::Lock(error)),
    };
    let dead_letters = EmbeddedDeadLetters::open(&config.data_dir)?;
    let mut outcomes = Vec::new();
    for sink in sinks(config, args.sink)? {
        let outcome = replay_dead_letters(sink.as_ref(), &dead_letters, args.limit).await?;
        tracing::info!(
            sink = sink.name(),
            replayed = outcome.replayed,
            still_parked = outcome.still_parked,
            "dead letters replayed"
        );
        outcomes.push((sink.name(), outcome));
    }
    Ok(outcomes)
}

/// The sinks `only` names (every one when `None`), opened on the data folder.
fn sinks(config: &Config, only: Option<RelaySink>) -> Result<Vec<Arc<dyn EventSink>>, ReplayError> {
    let wanted = |sink: RelaySink| only.is_none_or(|only| only == sink);
    let open = |error: StartupError| ReplayError::Open(error);
    let mut sinks: Vec<Arc<dyn EventSink>> = Vec::new();
    if wanted(RelaySink::Ledger) {
        let ledger = EmbeddedLedger::open(&config.data_dir).map_err(|error| open(error.into()))?;
        sinks.push(Arc::new(ledger));
    }
    if wanted(RelaySink::ReadModel) {
        let read_model =
            EmbeddedReadModel::open(&config.data_dir).map_err(|error| open(error.into()))?;
        sinks.push(Arc::new(read_model));
    }
    if wanted(RelaySink::SearchIndex) {
        let index =
            EmbeddedSearchIndex::open(&config.data_dir).map_err(|error| open(error.into()))?;
        sinks.push(Arc::new(index));
    }
    Ok(sinks)
}
