//! `rebuild`: the ledger again from the event store, the source of truth.
//!
//! Stop the ledger-consumers first. The rebuild empties the ledger's tables
//! (transactions, entries, processed event ids, checkpoint) and posts every
//! event of the configured event store (`EVENT_STORE`, chosen by
//! `event-store-choice` as for command-api and outbox-relay) in log order, a
//! bounded batch per transaction, each with the ids of the events it posted.
//!
//! Why Kafka's committed offsets may stay as they are: every event the
//! consumers had consumed is in the event store (the relay publishes only
//! what is stored), so the rebuild posts it again and records its id. When
//! the consumers restart, whatever Kafka hands them, events consumed before
//! (redelivered) or not yet consumed, is posted only if its id is not there:
//! events the rebuild already posted are deduplicated by event id, events
//! appended after it are posted as usual. Nothing is lost or posted twice.
//! A consumer left running would not break this either (its posts are
//! deduplicated the same way and `clear` waits for the one in progress), but
//! the ledger it shows meanwhile is incomplete, hence: stop them first.
//!
//! A rebuild that fails midway leaves a partial ledger: run it again.
//!
//! It refuses before emptying anything when the log is empty or its head is
//! behind the ledger's checkpoint: the ledger has posted events the log does
//! not hold (the wrong store configured, or a store restored from an older
//! backup), and a rebuild would throw them away.

use event_store::{EventStore, StoreError};
use event_store_choice::{ChoiceError, EventStoreArgs};
use ledger::{Ledger, LedgerError, LedgerVerification, PostgresLedger};

use consumer_host::Settings;
use postgres_support::PostgresError;

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Postgres(#[from] PostgresError),
    #[error("event store: {0}")]
    EventStore(#[from] StoreError),
    #[error(transparent)]
    EventStoreChoice(#[from] ChoiceError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(
        "the event log ended at position {reached}, before its head {head}; run the rebuild again"
    )]
    LogEndedEarly { reached: u64, head: u64 },
    #[error("the event log did not advance past position {0}")]
    LogStalled(u64),
    #[error("the rebuilt ledger does not verify: {0:?}")]
    Unverified(Box<LedgerVerification>),
    #[error(
        "refused: the event log is empty while the ledger's checkpoint is at position {checkpoint}; \
         nothing to rebuild from (is the event store the configured one?); the ledger is left as it was"
    )]
    EmptyLog { checkpoint: u64 },
    #[error(
        "refused: the event log's head {head} is behind the ledger's checkpoint {checkpoint}; \
         the ledger holds events the log lacks (another store, or one restored from an older backup); \
         the ledger is left as it was"
    )]
    LogBehindLedger { head: u64, checkpoint: u64 },
}

/// What a replay of the log posted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildOutcome {
    /// The head of the log when the replay began: everything up to it is posted.
    pub head: u64,
    /// Events read from the log (some past `head` when appends went on).
    pub events_read: u64,
    pub events_posted: u64,
    /// Events the ledger held already (none after a `clear`).
    pub events_skipped: u64,
    pub batches: u64,
}

/// Connects to PostgreSQL (migrating it) and rebuilds the ledger from the
/// event store `event_store` names. Stop the ledger-consumers first. Their
/// Kafka offsets need no reset: every event they consumed before is in the
/// store, so the rebuild posts it and records its id, and whatever Kafka
/// hands them after the restart is deduplicated by event id (see the module
/// documentation).
pub async fn rebuild(
    settings: &Settings,
    event_store: &EventStoreArgs,
    batch_size: usize,
) -> Result<RebuildOutcome, RebuildError> {
    let pool = postgres_support::connect(&settings.database_url, settings.database_connections_max)
        .await?;
    let opened = event_store.open(&pool).await;
    let outcome = match opened {
        Ok(opened) => {
            rebuild_with(
                opened.store.as_ref(),
                &PostgresLedger::new(pool.clone()),
                batch_size,
            )
            .await
        }
        Err(error) => Err(error.into()),
    };
    pool.close().await;
    outcome
}

/// Empties `ledger`, posts every event of `store` into it and verifies it;
/// refuses, changing nothing, when the log is empty or behind the ledger
/// ([`RebuildError::EmptyLog`], [`RebuildError::LogBehindLedger`]).
pub async fn rebuild_with(
    store: &dyn EventStore,
    ledger: &PostgresLedger,
    batch_size: usize,
) -> Result<RebuildOutcome, RebuildError> {
    let head = store.head_position().await?;
    let checkpoint = Ledger::checkpoint(ledger).await?;
    if head == 0 {
        return Err(RebuildError::EmptyLog { checkpoint });
    }
    if head < checkpoint {
        return Err(RebuildError::LogBehindLedger { head, checkpoint });
    }
    ledger.clear().await?;
    tracing::info!("ledger emptied; posting the event log again");
    let outcome = replay_log(store, ledger, batch_size).await?;
    let verification = ledger.verify().await?;
    if !verification.ok {
        return Err(RebuildError::Unverified(Box::new(verification)));
    }
    Ok(outcome)
}

/// Posts every event of `store` up to its current head into `ledger`, in log
/// order, `batch_size` (at most `READ_ALL_BATCH_MAX`) per transaction, each
/// batch with its last position as the ledger's checkpoint. The loop is
/// bounded by the head read at the start, and each batch must move past the
/// last (or the replay fails), so it ends after `head / batch_size` batches
/// when positions are dense and never after more than `head`.
pub async fn replay_log(
    store: &dyn EventStore,
    ledger: &dyn Ledger,
    batch_size: usize,
) -> Result<RebuildOutcome, RebuildError> {
    let batch_size = batch_size.clamp(1, event_store::READ_ALL_BATCH_MAX);
    let head = store.head_position().await?;
    let mut outcome = RebuildOutcome {
        head,
        ..RebuildOutcome::default()
    };
    let mut after = 0;
    while after < head {
        let batch = store.read_all(after, batch_size).await?;
        let Some(last) = batch.last().map(|recorded| recorded.position) else {
            return Err(RebuildError::LogEndedEarly {
                reached: after,
                head,
            });
        };
        if last <= after {
            return Err(RebuildError::LogStalled(after));
        }
        let posted = ledger.post(&batch, Some(last)).await?;
        outcome.events_read += consumer_host::count(batch.len());
        outcome.events_posted += consumer_host::count(posted.posted);
        outcome.events_skipped += consumer_host::count(posted.skipped);
        outcome.batches += 1;
        after = last;
        tracing::debug!(position = after, head, "rebuild progress");
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use event_store::EmbeddedEventStore;
    use ledger::conformance::{everything, standard_log};
    use ledger::EmbeddedLedger;

    use super::*;

    /// The standard log, appended to an embedded store as the API would.
    async fn store_with_standard_log(folder: &std::path::Path) -> EmbeddedEventStore {
        let store = EmbeddedEventStore::open(folder).expect("an embedded store");
        for append in standard_log().appends() {
            store.append(append).await.expect("appended");
        }
        store
    }

    #[tokio::test]
    async fn the_replay_posts_the_whole_log_in_bounded_batches() {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let store = store_with_standard_log(folder.path()).await;
        let ledger = EmbeddedLedger::open(folder.path()).expect("a ledger");
        let outcome = replay_log(&store, &ledger, 2).await.expect("replayed");
        let events = standard_log().recorded.len() as u64;
        assert_eq!(outcome.head, events);
        assert_eq!(outcome.events_read, events);
        assert_eq!(outcome.events_posted, events);
        assert_eq!(outcome.events_skipped, 0);
        assert_eq!(outcome.batches, events.div_ceil(2));
        assert!(ledger.verify().await.expect("verify").ok);
        assert_eq!(
            Ledger::checkpoint(&ledger).await.expect("checkpoint"),
            events
        );

        // Replaying again over a full ledger posts nothing: ids deduplicate.
        let entries = ledger.transactions(everything()).await.expect("entries");
        let again = replay_log(&store, &ledger, 1_000_000)
            .await
            .expect("replayed");
        assert_eq!(again.events_posted, 0);
        assert_eq!(again.events_skipped, events);
        assert_eq!(again.batches, 1);
        assert_eq!(
            ledger.transactions(everything()).await.expect("entries"),
            entries
        );
    }

    #[tokio::test]
    async fn an_empty_log_posts_nothing() {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let store = EmbeddedEventStore::open(folder.path()).expect("a store");
        let ledger = EmbeddedLedger::open(folder.path()).expect("a ledger");
        let outcome = replay_log(&store, &ledger, 10).await.expect("replayed");
        assert_eq!(outcome, RebuildOutcome::default());
    }
}
