//! The search index port: wallets and their transactions, as the history and
//! search endpoints see them. Two implementations: Elasticsearch/OpenSearch
//! (distributed mode) and SQLite (the embedded default, fed in-process by the
//! relay); both pass the scenarios of `conformance`.
//!
//! Every event becomes one transaction document whose id is the event id, so a
//! redelivered event overwrites the same document and indexing is idempotent.
//! Each wallet has one document whose version is the stream version of the
//! last event applied to it (external versioning): an older event that arrives
//! after a newer one cannot move a wallet back in time. (The embedded index
//! reads a wallet from its first and newest transaction rows instead of
//! writing it, with the same result.)
//!
//! Money is stored twice: as exact decimal text (what is returned) and as whole
//! cents in a `long` (what range filters compare). No float ever holds it.
//!
//! Error policy: every failure is a [`SearchIndexError`]; a server that does
//! not answer or refuses is an operating error the caller retries (indexing is
//! idempotent, so retrying a whole batch is safe); an invalid query is the
//! caller's error, to be shown as such.

#[cfg(feature = "conformance")]
pub mod conformance;
mod documents;
mod elasticsearch;
mod embedded;
mod query;
mod search_url;
mod words;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use event_store::RecordedEvent;
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;
use wallet_domain::{Balance, HoldId, OwnerId, WalletId};

pub use crate::elasticsearch::{
    ElasticsearchIndex, FIRST_INDEX_SUFFIX, REQUEST_TIMEOUT_MS_DEFAULT, REQUEST_TIMEOUT_MS_MAX,
};
pub use crate::embedded::{EmbeddedSearchIndex, DATABASE_FILE as EMBEDDED_FILE};
pub use crate::query::Page;
pub use crate::search_url::{check_search_url, SearchUrlError, SEARCH_URL_SCHEMES};

/// Transactions one query returns when the caller names no limit.
pub const TRANSACTIONS_LIMIT_DEFAULT: usize = 50;
/// Transactions one query returns at most.
pub const TRANSACTIONS_LIMIT_MAX: usize = 500;
/// How deep offset paging may reach (`offset + limit`): the server's default
/// `index.max_result_window`, beyond which it refuses the search.
pub const RESULT_WINDOW_MAX: usize = 10_000;
/// Characters of free text one search may carry.
pub const QUERY_TEXT_LENGTH_MAX: usize = 200;
/// Events one `_bulk` request carries at most; a larger batch is indexed in
/// several requests, in order.
pub const BULK_EVENTS_MAX: usize = 2_000;

/// Suffix of the Kafka consumer group that feeds the search index.
pub const CONSUMER_GROUP_SUFFIX: &str = "-search-index";

/// The Kafka consumer group feeding the search index beside the read
/// model's group `read_model_group` (projection-consumer's `KAFKA_GROUP_ID`,
/// command-api's `PROJECTION_CONSUMER_GROUP`): `<read_model_group>-search-index`.
/// Derived, not configured, so the two processes cannot disagree on it.
/// A group of its own keeps the read model flowing while the search server
/// is away, and the search index catching up on its own afterwards.
pub fn consumer_group(read_model_group: &str) -> String {
    format!("{read_model_group}{CONSUMER_GROUP_SUFFIX}")
}

/// One event as the search index holds it: a movement of money (or, for
/// `WalletCreated`, the opening balance) seen from one wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    /// The id of the event, which is the id of the document.
    pub id: Uuid,
    pub wallet_id: WalletId,
    pub owner_id: OwnerId,
    /// The event type, as [`wallet_domain::EventKind::type_name`] names it:
    /// `WalletCreated`, `WalletCredited`, `WalletDebited`, `TransferSent`,
    /// `TransferReceived`, `TransferReversed` (a transfer's paying half given
    /// back because the payee could not be credited), a hold's events
    /// (`HoldPlaced`, `HoldCaptured`, `HoldCaptureReceived`,
    /// `HoldCaptureReversed`, `HoldVoided`, `HoldExpired`) or a change that
    /// moves no money.
    #[serde(rename = "type")]
    pub transaction_type: String,
    /// The amount moved, never negative; the direction is in the type.
    pub amount: Balance,
    pub balance_after: Balance,
    pub counterparty_wallet_id: Option<WalletId>,
    pub transfer_id: Option<Uuid>,
    /// The event's own description. `HoldVoided` and `HoldExpired` carry
    /// none (the event does not repeat its hold's): `None`; the hold's
    /// description is on its `HoldPlaced`, found by `hold_id`.
    pub description: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// Global position of the event in the event store.
    pub position: u64,
    /// Version of the event in its wallet's stream.
    pub stream_version: u64,
    /// Who caused the event: the principal in its metadata, when there was one.
    pub principal: Option<String>,
    /// The hold a hold event is about; `None` for every other event.
    pub hold_id: Option<HoldId>,
}

/// A wallet as of the newest event the index has applied to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexedWallet {
    pub id: WalletId,
    pub owner_id: OwnerId,
    pub balance: Balance,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// One page of transactions, newest first, and how many match in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransactionPage {
    pub items: Vec<Transaction>,
    pub total: u64,
}

/// Filters of a transaction search; every one given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionSearch {
    pub owner_id: Option<OwnerId>,
    pub wallet_id: Option<WalletId>,
    /// Occurred at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Occurred at or before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Amount at least this much (inclusive).
    pub min_amount: Option<Decimal>,
    /// Amount at most this much (inclusive).
    pub max_amount: Option<Decimal>,
    /// Full text on the description: every word must occur.
    pub q: Option<String>,
    /// Keyset cursor: only transactions at a position below this one (older
    /// than the transaction at it), so a reader pages through every match
    /// once, by the order the list is in (h151 F1: paging on `to=` skipped
    /// rows, as `occurredAt` does not always grow with the position across
    /// wallets).
    pub before_position: Option<u64>,
    /// At most [`TRANSACTIONS_LIMIT_MAX`]; [`TRANSACTIONS_LIMIT_DEFAULT`] when `None`.
    pub limit: Option<usize>,
    pub offset: usize,
}

/// What one `index_batch` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexOutcome {
    /// Transaction documents written (a redelivered event is written again, unchanged).
    pub transactions: usize,
    /// Wallet documents moved to a newer version.
    pub wallets_updated: usize,
    /// Wallet documents left alone because the index already held that
    /// version or a newer one.
    pub wallets_already_newer: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchIndexError {
    #[error("invalid search index configuration: {0}")]
    InvalidConfig(String),
    #[error("search index unavailable: {0}")]
    Unavailable(String),
    /// Its file was found damaged (embedded default): nothing is read from
    /// or written to it until it is moved out and built again from the log.
    #[error("search index damaged: {0}")]
    Damaged(String),
    #[error("search index refused the request with status {status}: {reason}")]
    Refused { status: u16, reason: String },
    /// Items of a `_bulk` request failed. `passing` when every failed item's
    /// status may pass by itself (429, or 5xx: a shard still recovering, a
    /// full queue), so the batch is retried rather than dead-lettered.
    #[error("{failed} of {total} bulk items failed; first failures: {first:?}")]
    BulkItemsFailed {
        failed: usize,
        total: usize,
        first: Vec<String>,
        passing: bool,
    },
    /// An event of a wallet whose `WalletCreated` the index has not seen: it
    /// is missing or still on its way, so the batch must be retried later.
    #[error("wallet {0} has no WalletCreated in the search index yet")]
    UnknownWallet(WalletId),
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error("search index holds an unreadable document: {0}")]
    Corrupt(String),
}

/// HTTP statuses of a refusal that says nothing of the documents, only of
/// the server's state, which an operator or time changes: credentials not
/// (or no longer) accepted (401), a write block on the index or the
/// cluster (403 `cluster_block_exception`, as `index.blocks.write` or
/// `read_only` answer; a disk-full block answers 429) or a role without the
/// right (403), an index missing (404), a request timeout (408), too many
/// requests (429). With any server error (5xx from
/// [`TRANSIENT_STATUS_SERVER_ERROR_MIN`] up), the same documents may pass
/// later: retried, never dead-lettered. Any other 4xx (400: a document the
/// mapping refuses) would fail again on the same documents.
const TRANSIENT_STATUSES: [u16; 5] = [401, 403, 404, 408, 429];
const TRANSIENT_STATUS_SERVER_ERROR_MIN: u16 = 500;

/// Error types of a refusal for the index's state whatever its status: a
/// closed index (400 `index_closed_exception`), a block (403 or 429
/// `cluster_block_exception`), an index missing.
const TRANSIENT_ERROR_TYPES: [&str; 3] = [
    "index_closed_exception",
    "cluster_block_exception",
    "index_not_found_exception",
];

/// Whether a refusal with this HTTP status and body (or bulk item error)
/// may pass by itself.
pub(crate) fn is_transient_refusal(status: u16, reason: &str) -> bool {
    TRANSIENT_STATUSES.contains(&status)
        || status >= TRANSIENT_STATUS_SERVER_ERROR_MIN
        || TRANSIENT_ERROR_TYPES
            .iter()
            .any(|error_type| reason.contains(error_type))
}

#[async_trait]
pub trait SearchIndex: Send + Sync {
    /// Creates both indices with their mappings unless they exist already.
    async fn ensure_indices(&self) -> Result<(), SearchIndexError>;

    /// Indexes a batch of events (each wallet's in stream-version order):
    /// one `_bulk` request per [`BULK_EVENTS_MAX`] events. Idempotent.
    async fn index_batch(&self, events: &[RecordedEvent])
        -> Result<IndexOutcome, SearchIndexError>;

    /// One wallet's transactions, newest first (by position). With
    /// `before_position`, the keyset cursor of deep pages, only those at a
    /// position below it (older than the transaction at that position),
    /// read from the wallet's index so a page's cost does not grow with its
    /// depth; `offset` then skips within those. `total` counts every
    /// transaction the query selects, the cursor included.
    async fn wallet_transactions(
        &self,
        wallet_id: &WalletId,
        before_position: Option<u64>,
        limit: Option<usize>,
        offset: usize,
    ) -> Result<TransactionPage, SearchIndexError>;

    /// Transactions matching every filter given, newest first.
    async fn search_transactions(
        &self,
        search: &TransactionSearch,
    ) -> Result<TransactionPage, SearchIndexError>;

    /// The wallet document, when the index has one.
    async fn wallet(&self, wallet_id: &WalletId)
        -> Result<Option<IndexedWallet>, SearchIndexError>;

    /// Makes everything indexed so far visible to the searches that start
    /// after it returns. Elasticsearch shows a write only after its next
    /// refresh (every second by default), so this asks for one; the embedded
    /// index shows a write as soon as it returns, so this does nothing there.
    async fn make_searchable(&self) -> Result<(), SearchIndexError>;

    /// Whether the server answers, for health checks.
    async fn ping(&self) -> Result<(), SearchIndexError>;
}

impl event_sink::Transience for SearchIndexError {
    /// Whether the same request may succeed later: the server away or timed
    /// out, a refusal for its state (401, 403, 404, 408, 429, 5xx, a closed
    /// or blocked index; of the request or of every failed bulk item), or a
    /// wallet whose creation the next batch brings. A consumer retries it
    /// without end.
    fn is_transient(&self) -> bool {
        match self {
            // Damage is retried too: the events wait in the log, none is
            // dead-lettered for a fault of the file, until it is rebuilt.
            SearchIndexError::Unavailable(_)
            | SearchIndexError::UnknownWallet(_)
            | SearchIndexError::Damaged(_) => true,
            SearchIndexError::Refused { status, reason } => is_transient_refusal(*status, reason),
            SearchIndexError::BulkItemsFailed { passing, .. } => *passing,
            SearchIndexError::InvalidConfig(_)
            | SearchIndexError::InvalidQuery(_)
            | SearchIndexError::Corrupt(_) => false,
        }
    }
}
