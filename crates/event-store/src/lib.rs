//! The event store port.
//!
//! Every change to a wallet is an event appended to the wallet's stream with
//! the version the writer expects the stream to be at; a stale expectation is
//! a conflict, never a lost update. All streams also form one log in global
//! position order, which is the outbox the relays read: an event that is
//! stored is published, one that is not is not.
//!
//! Two implementations: [`EmbeddedEventStore`] (one SQLite file, the default)
//! and [`PostgresEventStore`] (shared by every replica in the distributed mode).
//! A store may also offer a live feed of the log ([`EventStore::subscribe_all`]);
//! these two do not, and their relays poll [`EventStore::read_all`].

mod embedded;
mod hold_listing;
mod hold_schedule;
mod log_tail;
mod postgres;
mod recorded;
mod snapshot;
mod stream_head;
mod tail;
#[cfg(feature = "testing")]
pub mod testing;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use tokio::sync::watch;
use uuid::Uuid;
use wallet_domain::{
    settlement, AsOf, EventDecodeError, EventKind, HoldId, HoldStatus, WalletEvent, WalletId,
};

/// How the embedded log stores an event's JSON (TEXT, or compressed).
pub use embedded::payload as embedded_payload;
pub use embedded::{
    EmbeddedEventStore, STREAM_INDEX_FLUSH_EVENTS, THROUGH_WRITE_STEP_POSITIONS,
    UNINDEXED_POSITIONS_MAX,
};
pub use hold_listing::{HoldPage, HoldPageQuery, ListedHold};
pub use hold_schedule::{HoldSchedule, HOLD_SCHEDULE_BATCHES_MAX};
pub use postgres::{
    AppendUnanswered, PostgresEventStore, ALLOCATOR_LOCK_TIMEOUT_MS, APPEND_WAIT_MS_MAX,
    GROUP_COMMIT_STATEMENT_TIMEOUT_MS, GROUP_COMMIT_WAIT_MS_MAX, POSITION_ALLOCATOR_LOCK_KEY,
};
pub use recorded::{EventHeader, RecordedEvent, StoredEvent};
pub use snapshot::{SnapshotReplace, StreamSnapshot, SNAPSHOT_HISTORY_BYTES_PER_EVENT};
pub use tail::{
    evolve_checked, fold_as_of_checked, fold_stream_as_of, read_tail, save_snapshot_of,
    snapshot_due, snapshot_state_as_of, version_in_stream, StreamTail, AS_OF_READ_PAGE_EVENTS,
    AS_OF_SNAPSHOT_TRIES, SNAPSHOT_INTERVAL_EVENTS,
};

/// Events to append to one stream, valid only if the stream is at `expected_version`.
#[derive(Debug, Clone)]
pub struct StreamAppend {
    pub wallet_id: WalletId,
    /// 0 means the stream must not exist yet.
    pub expected_version: u64,
    /// The id of the event the stream must hold at `expected_version`, when
    /// the writer knows it: the events were decided on the state that event
    /// left, so the append is refused ([`AppendError::LastEventMismatch`])
    /// if the store holds another event there (it lost the one the writer
    /// saw, after a failover, and a peer wrote a different one). `None`
    /// checks the version only.
    pub expected_last_event_id: Option<Uuid>,
    pub events: Vec<WalletEvent>,
}

/// The response to replay for a repeated request with the same idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentResponse {
    pub key: String,
    /// A digest of what was asked (method, path, body): the same key with
    /// another request is refused rather than answered with this response.
    pub request_fingerprint: String,
    pub status: u16,
    pub body: String,
}

/// One atomic append: every stream's events and the idempotent response are
/// stored together or not at all.
#[derive(Debug, Clone, Default)]
pub struct AppendRequest {
    pub streams: Vec<StreamAppend>,
    pub idempotent_response: Option<IdempotentResponse>,
}

impl AppendRequest {
    /// Each stream's events as the JSON stored for them, in order: encoded
    /// before the store's writer takes the append, so that work is spent on
    /// the caller's thread, not on the one every append waits behind.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when an event cannot be encoded.
    pub(crate) fn encoded_payloads(&self) -> Result<Vec<Vec<String>>, StoreError> {
        self.streams
            .iter()
            .map(|stream| {
                stream
                    .events
                    .iter()
                    .map(|event| {
                        event.to_json().map_err(|error| {
                            StoreError::Unavailable(format!("event cannot be encoded: {error}"))
                        })
                    })
                    .collect()
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Global position of the last event stored.
    pub last_position: u64,
}

/// The cause of a [`StoreError::OutcomeUnknown`], kept for the log.
pub type OutcomeCause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or refused to work (connection, pool,
    /// timeout): nothing was stored, and the same request may be sent again.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// The store's file was found damaged (the embedded store's SQLite
    /// file does not hold together, [`embedded_sqlite::SqliteError::Damaged`]):
    /// nothing is read from or written to it again, and nothing of the
    /// request that got this was stored. Unlike [`StoreError::Unavailable`],
    /// retrying does not help: an operator must repair or restore the file
    /// and restart the server.
    #[error(transparent)]
    Damaged(embedded_sqlite::SqliteError),
    /// The store's file, its folder or its `-wal` was moved, deleted or
    /// replaced while the server ran ([`embedded_sqlite::SqliteError::Moved`]):
    /// nothing is written to it again, and nothing of the request that got
    /// this was stored. As with [`StoreError::Damaged`], retrying does not
    /// help: an operator must restart the server on the folder that holds
    /// the data.
    #[error(transparent)]
    Moved(embedded_sqlite::SqliteError),
    /// An append whose outcome is unknown: the commit was sent but its reply
    /// was lost (the connection dropped, the writer stopped), so its events
    /// may or may not be stored. Safe to retry with the same idempotency key.
    #[error("the outcome of an append is unknown")]
    OutcomeUnknown {
        #[source]
        source: OutcomeCause,
    },
    /// A stream whose event at `version` does not continue the state before it
    /// (a balance that disagrees with its own stream): nothing may be decided on it.
    #[error(
        "stream {wallet_id} is broken at version {version}: the event does not continue the stream"
    )]
    BrokenStream { wallet_id: WalletId, version: u64 },
    #[error("stored event at position {position} cannot be decoded: {source}")]
    Corrupt {
        position: u64,
        #[source]
        source: EventDecodeError,
    },
    /// A stored snapshot that cannot be read (`version` 0 when the version
    /// itself is unreadable); [`read_tail`] then reads the whole stream.
    #[error("the snapshot of stream {wallet_id} at version {version} disagrees with the stream")]
    CorruptSnapshot { wallet_id: WalletId, version: u64 },
}

impl StoreError {
    /// Whether no wait mends this error: the store's file was found damaged
    /// or was moved, so every request fails alike until an operator repairs,
    /// restores or restarts. The one decision behind a 503 that gives no
    /// `Retry-After`, for the commands and the health probes alike.
    pub fn needs_operator(&self) -> bool {
        matches!(self, StoreError::Damaged(_) | StoreError::Moved(_))
    }
}

/// The cause of an [`StoreError::OutcomeUnknown`] of every append of a group
/// whose COMMIT got no answer: one error, shared by all of them.
#[derive(Debug, thiserror::Error)]
#[error("the reply to COMMIT was lost")]
pub(crate) struct CommitUnanswered<E: std::error::Error + 'static>(
    #[source] pub(crate) std::sync::Arc<E>,
);

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("stream {wallet_id} is at version {actual}, not the expected {expected}")]
    VersionConflict {
        wallet_id: WalletId,
        expected: u64,
        actual: u64,
    },
    /// The stream is at the expected version, but its event there is not the
    /// one the writer decided on: the state it decided on is not the store's.
    #[error("stream {wallet_id} holds another event at version {version} than the one expected")]
    LastEventMismatch { wallet_id: WalletId, version: u64 },
    #[error("idempotency key {0:?} has already been used")]
    IdempotencyKeyTaken(String),
    /// A `HoldPlaced` of the append names a hold id the hold directory
    /// already has (on this wallet or another): nothing was stored.
    #[error("Hold {0} already exists")]
    HoldIdTaken(HoldId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The holds a stream append places: what enters the hold directory.
pub(crate) fn placed_holds(stream: &StreamAppend) -> impl Iterator<Item = &HoldId> {
    stream.events.iter().filter_map(|event| match &event.kind {
        EventKind::HoldPlaced { hold_id, .. } => Some(hold_id),
        _ => None,
    })
}

/// What one event changes in the hold directory.
pub(crate) enum DirectoryChange<'a> {
    /// A hold placed: a new row, due at the instant its expiry is kept at
    /// ([`wallet_domain::kept_expiry`], the asked one rounded up to the
    /// millisecond), when the domain finds it due; not a sweep sooner. It
    /// keeps when the hold was placed (its `createdAt`), the order its
    /// wallet's holds are listed in ([`EventStore::hold_page`]).
    Enter {
        hold_id: &'a HoldId,
        expires_at: Option<DateTime<Utc>>,
        placed_at: DateTime<Utc>,
    },
    /// A hold settled: no longer due, and what it became.
    Settle {
        hold_id: &'a HoldId,
        status: HoldStatus,
    },
}

pub(crate) fn directory_change(event: &WalletEvent) -> Option<DirectoryChange<'_>> {
    match &event.kind {
        EventKind::HoldPlaced {
            hold_id,
            expires_at,
            ..
        } => Some(DirectoryChange::Enter {
            hold_id,
            expires_at: expires_at.map(wallet_domain::kept_expiry),
            placed_at: event.occurred_at,
        }),
        kind => {
            settlement(kind).map(|(hold_id, status)| DirectoryChange::Settle { hold_id, status })
        }
    }
}

/// Where a hold's life lies in its wallet's stream, from the hold directory:
/// the version of its `HoldPlaced` and of the event that settled it
/// (captured, voided or expired). Reading the stream between the two gives
/// the hold as it ended, however long the stream grew since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldVersions {
    /// Stream version of the `HoldPlaced`.
    pub placed: u64,
    /// Stream version of the settling event; `None` while the hold is pending.
    pub settled: Option<u64>,
}

/// A hold directory row's versions read back (`None` for no row, or a row
/// entered before the directory kept them).
pub(crate) fn hold_versions(row: Option<(Option<i64>, Option<i64>)>) -> Option<HoldVersions> {
    let (Some(placed), settled) = row? else {
        return None;
    };
    let version = |raw: i64| u64::try_from(raw).unwrap_or_default();
    Some(HoldVersions {
        placed: version(placed),
        settled: settled.map(version),
    })
}

/// A wallet id read back from the hold directory.
pub(crate) fn directory_wallet(raw: &str) -> Result<WalletId, StoreError> {
    WalletId::parse(raw).map_err(|error| {
        StoreError::Unavailable(format!("the hold directory holds a bad wallet id: {error}"))
    })
}

/// A row of the hold directory read back.
pub(crate) fn due_hold(hold_id: &str, wallet_id: &str) -> Result<DueHold, StoreError> {
    Ok(DueHold {
        hold_id: HoldId::parse(hold_id).map_err(|error| {
            StoreError::Unavailable(format!("the hold directory holds a bad hold id: {error}"))
        })?,
        wallet_id: directory_wallet(wallet_id)?,
    })
}

/// A pending hold whose expiry has come, and its wallet: what the expiry
/// sweeper settles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueHold {
    pub hold_id: HoldId,
    pub wallet_id: WalletId,
}

/// Limit of one `read_all` call.
pub const READ_ALL_BATCH_MAX: usize = 1_000;

/// The global log as a live stream of events as stored (see
/// [`EventStore::subscribe_all`]).
pub type EventFeed = BoxStream<'static, Result<StoredEvent, StoreError>>;

#[async_trait]
pub trait EventStore: Send + Sync {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError>;

    /// The events of one stream with a version greater than `after_version`, in order.
    async fn read_stream(
        &self,
        wallet_id: &WalletId,
        after_version: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The events of one stream with `after_version < version <= up_to_version`,
    /// in order: a read whose length the caller bounds, however long the stream
    /// (a state as of a version, a fold up to a known event). The default reads
    /// from `after_version` on and drops the rest; the stores bound the read itself.
    async fn read_stream_until(
        &self,
        wallet_id: &WalletId,
        after_version: u64,
        up_to_version: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = self.read_stream(wallet_id, after_version).await?;
        events.retain(|recorded| recorded.stream_version <= up_to_version);
        Ok(events)
    }

    /// Up to `limit` (at most [`READ_ALL_BATCH_MAX`]) events after `after_position`,
    /// in global order, with no gap a later commit could fill.
    async fn read_all(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// What [`EventStore::read_all`] returns, as stored and not decoded: what
    /// a relay moves, so that an event this build cannot decode does not
    /// stop it. The default encodes what `read_all` decoded (for a store
    /// whose reads decode); a store that keeps the JSON returns it as it is.
    async fn read_all_stored(
        &self,
        after_position: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_all(after_position, limit)
            .await?
            .iter()
            .map(|recorded| {
                StoredEvent::from_recorded(recorded).map_err(|error| {
                    StoreError::Unavailable(format!("event cannot be encoded: {error}"))
                })
            })
            .collect()
    }

    /// A live feed of the events after `after_position`, in global order:
    /// the events `read_all` would return batch after batch, then each event
    /// as it is stored, with no gap a later commit could fill. It is pulled:
    /// the store sends no more than its reader takes (a reader that stops
    /// pulling holds the store back rather than buffering). It ends after the
    /// first error it yields; the reader opens another from its checkpoint.
    ///
    /// `None` (the default) when the store offers no such feed: its readers
    /// poll `read_all`, which is what keeps the embedded and PostgreSQL
    /// stores' readers from skipping a late commit.
    async fn subscribe_all(&self, _after_position: u64) -> Option<EventFeed> {
        None
    }

    /// The newest stored snapshot of the stream, if any. The default (a store
    /// that keeps none) answers `None`, and readers replay the stream.
    async fn read_snapshot(
        &self,
        _wallet_id: &WalletId,
    ) -> Result<Option<StreamSnapshot>, StoreError> {
        Ok(None)
    }

    /// The stored snapshot of the stream nearest before `as_of`: the one at
    /// the highest version at or below a version, or whose last event
    /// occurred at or before a time ([`StreamSnapshot::occurred_at`]), the
    /// latest first among equal times. `None` when there is none, and from
    /// a store that keeps only its newest snapshot (the default; KurrentDB):
    /// the reader then tries the newest ([`crate::read_snapshot_as_of`]).
    async fn read_snapshot_as_of(
        &self,
        _wallet_id: &WalletId,
        _as_of: AsOf,
    ) -> Result<Option<StreamSnapshot>, StoreError> {
        Ok(None)
    }

    /// Keeps `snapshot` beside the stored ones of its stream, the newest of
    /// them replaced as `replace` says. The caller folded it from stored
    /// events only. The embedded and PostgreSQL stores keep every snapshot
    /// (one row per version, one per [`SNAPSHOT_INTERVAL_EVENTS`] events of
    /// a stream), KurrentDB its newest two. The default keeps nothing.
    async fn save_snapshot(
        &self,
        _snapshot: StreamSnapshot,
        _replace: SnapshotReplace,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// The version of the stream's event `event_id`, if the stream holds it.
    /// The default reads the whole stream ([`version_in_stream`]); the SQL
    /// stores look it up by id.
    async fn version_of_event(
        &self,
        wallet_id: &WalletId,
        event_id: Uuid,
    ) -> Result<Option<u64>, StoreError> {
        version_in_stream(self, wallet_id, event_id).await
    }

    /// Position of the last stored event (0 when empty).
    async fn head_position(&self) -> Result<u64, StoreError>;

    /// The wallet a hold was placed on, from the hold directory: every
    /// `HoldPlaced` appended enters it in the append's transaction, under a
    /// unique hold id ([`AppendError::HoldIdTaken`] otherwise). `None` for a
    /// hold id never placed. The embedded and PostgreSQL stores keep the
    /// directory in a table, KurrentDB in claim streams (its crate's `holds`
    /// module); the default, for a store that keeps none, answers
    /// [`StoreError::Unavailable`].
    async fn find_hold_wallet(&self, _hold_id: &HoldId) -> Result<Option<WalletId>, StoreError> {
        Err(StoreError::Unavailable(format!(
            "the {} event store keeps no hold directory",
            self.kind()
        )))
    }

    /// Where the hold's life lies in its wallet's stream ([`HoldVersions`]),
    /// written to the hold directory in the transactions that place and
    /// settle it. `None` for a hold id never placed, for a hold entered
    /// before the directory kept versions, and from a store that keeps none
    /// (the default; KurrentDB): the caller then searches the stream.
    async fn hold_versions(&self, _hold_id: &HoldId) -> Result<Option<HoldVersions>, StoreError> {
        Ok(None)
    }

    /// One page of `wallet_id`'s holds as they stand at the query's clock,
    /// in the order the API lists them (by `createdAt`, then hold id), with
    /// the count of all that match its status, from the hold directory
    /// alone: a read as long as the wallet's holds, not its stream. `None`
    /// from a store that keeps no such directory (the default; KurrentDB)
    /// and for a wallet with a hold entered before the directory kept when
    /// holds were placed (or their versions): the caller then folds the
    /// wallet's stream.
    async fn hold_page(
        &self,
        _wallet_id: &WalletId,
        _query: &HoldPageQuery,
    ) -> Result<Option<HoldPage>, StoreError> {
        Ok(None)
    }

    /// At most `limit` pending holds whose `expires_at` is at or before
    /// `clock`, soonest first, from the hold directory (empty without one).
    async fn due_holds(
        &self,
        _clock: DateTime<Utc>,
        _limit: usize,
    ) -> Result<Vec<DueHold>, StoreError> {
        Ok(Vec::new())
    }

    async fn find_idempotent_response(
        &self,
        key: &str,
    ) -> Result<Option<IdempotentResponse>, StoreError>;

    /// Deletes at most `batch_max` idempotent responses recorded before
    /// `recorded_before`, oldest first, and returns how many it deleted: a key
    /// whose response is gone may be used again. The embedded and PostgreSQL
    /// stores implement it; the default (KurrentDB) deletes nothing and
    /// answers 0, so there the keys never expire.
    async fn purge_idempotent_responses(
        &self,
        _recorded_before: DateTime<Utc>,
        _batch_max: usize,
    ) -> Result<usize, StoreError> {
        Ok(0)
    }

    /// True when [`Self::purge_idempotent_responses`] deletes what it is
    /// asked to (the embedded and PostgreSQL stores): its keys expire. The
    /// default (KurrentDB) keeps them for good.
    fn idempotent_responses_expire(&self) -> bool {
        false
    }

    /// True when one [`AppendRequest`] to several streams is stored all or
    /// nothing (SQLite and PostgreSQL transactions). A store that writes one
    /// stream at a time answers false, and the command side moves money
    /// between wallets through the transfer process instead.
    fn appends_streams_atomically(&self) -> bool {
        true
    }

    /// Wakes readers of the global log when this process appends.
    fn appended(&self) -> watch::Receiver<u64>;

    /// A short name for health and logs.
    fn kind(&self) -> &'static str;
}
