//! The read model port: wallets as list and filter queries see them.
//!
//! A projection applies each wallet's events in stream-version order: an event
//! at or below the stored version was applied already and is skipped (this is
//! the projection's deduplication), one that would leave a gap is refused
//! until the missing event arrives, never papered over. Because the version
//! check is the deduplication, the read model keeps no `processed_events`
//! table: a redelivered event is at or below its wallet's version.
//!
//! [`EmbeddedReadModel`] keeps it in SQLite, [`PostgresReadModel`] in
//! PostgreSQL; both decide through one pure rule (the private `projection`
//! module) and differ only in how rows are read and written. Both are
//! [`event_sink::EventSink`]s that move their checkpoint, never backwards,
//! in the transaction that applies the batch.

#[cfg(feature = "conformance")]
pub mod conformance;
mod embedded;
mod postgres;
mod projection;

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use event_store::RecordedEvent;
use rust_decimal::Decimal;
use wallet_domain::{Balance, OwnerId, WalletId, WalletStatus};

pub use embedded::{EmbeddedReadModel, DATABASE_FILE as EMBEDDED_FILE};
pub use postgres::PostgresReadModel;

/// The name both read models give themselves as an event sink.
const SINK_NAME: &str = "read-model";

/// Wallets one list call returns when the caller names no limit.
pub const LIST_LIMIT_DEFAULT: usize = 1_000;
/// Wallets one list call returns at most.
pub const LIST_LIMIT_MAX: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletView {
    pub id: WalletId,
    pub owner_id: OwnerId,
    /// Below zero only within `overdraft_limit`.
    pub balance: Balance,
    /// What the wallet's pending holds reserve.
    pub held_balance: Balance,
    pub overdraft_limit: Balance,
    pub status: WalletStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

#[derive(Debug, Clone, Default)]
pub struct WalletListQuery {
    pub owner_id: Option<OwnerId>,
    /// Only wallets whose id sorts after this one (keyset paging).
    pub after: Option<WalletId>,
    pub limit: usize,
    /// The moment the wallets are seen at: a pending hold due by then no
    /// longer counts in `held_balance`, as `wallet_domain::Wallet::seen_at`
    /// sees a wallet, whether or not its `HoldExpired` is projected yet.
    /// `None`: the held balance as projected.
    pub seen_at: Option<DateTime<Utc>>,
}

/// Takes out of each view's held balance the holds of `due` (one wallet id
/// and amount per pending hold due at the list's moment); a hold of a wallet
/// not among `views` is ignored. A held balance that would go below zero is
/// [`ReadModelError::Corrupt`]: a due hold is pending, so it is counted there.
fn release_due(
    views: &mut [WalletView],
    due: Vec<(String, Decimal)>,
) -> Result<(), ReadModelError> {
    if due.is_empty() {
        return Ok(());
    }
    let index_of: HashMap<String, usize> = views
        .iter()
        .enumerate()
        .map(|(index, view)| (view.id.to_string(), index))
        .collect();
    for (wallet_id, amount) in due {
        let Some(&index) = index_of.get(&wallet_id) else {
            continue;
        };
        let view = &mut views[index];
        view.held_balance = Balance::try_from(view.held_balance.value() - amount)
            .ok()
            .filter(|held| held.value() >= Decimal::ZERO)
            .ok_or_else(|| {
                ReadModelError::Corrupt(format!(
                    "wallet {wallet_id}: a due hold of {amount} exceeds its held balance {}",
                    view.held_balance
                ))
            })?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    pub applied: usize,
    pub skipped: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    #[error("read model unavailable: {0}")]
    Unavailable(String),
    #[error("wallet {wallet_id} is at version {stored}; event version {arrived} leaves a gap")]
    Gap {
        wallet_id: WalletId,
        stored: u64,
        arrived: u64,
    },
    #[error("read model holds an unreadable row: {0}")]
    Corrupt(String),
    /// Its file was found damaged (embedded default): nothing is read from
    /// or written to it until it is moved out and built again from the log.
    #[error("read model damaged: {0}")]
    Damaged(String),
    /// The store refused a statement for what it holds or asks (a
    /// constraint, a value a column cannot take, a table that is not
    /// there): it would refuse it again.
    #[error("read model refused the statement: {0}")]
    Refused(String),
    /// A consumer's stored offsets were not the expected ones: nothing was applied.
    #[error(transparent)]
    OffsetsMoved(#[from] event_sink::OffsetsMoved),
}

#[async_trait]
pub trait ReadModel: Send + Sync {
    /// Applies events (each wallet's in version order) and, when given, moves
    /// the checkpoint in the same transaction; it never moves back. On
    /// [`ReadModelError::Gap`] nothing of the batch is applied.
    async fn apply(
        &self,
        events: &[RecordedEvent],
        checkpoint: Option<u64>,
    ) -> Result<ApplyOutcome, ReadModelError>;

    /// [`ReadModel::apply`] that also moves a Kafka consumer's `offsets` in
    /// the same transaction; [`ReadModelError::OffsetsMoved`], applying
    /// nothing, when a partition's stored offset is not its expected one.
    /// The default, for a read model that keeps no offsets (see
    /// [`ReadModel::consumer_offsets`]), is [`ReadModel::apply`].
    async fn apply_consumed(
        &self,
        events: &[RecordedEvent],
        checkpoint: Option<u64>,
        _offsets: &event_sink::ConsumerOffsets,
    ) -> Result<ApplyOutcome, ReadModelError> {
        self.apply(events, checkpoint).await
    }

    /// The next offsets stored for consumer `group` on `topic`, by
    /// partition, or `None` when this read model keeps none (the default).
    async fn consumer_offsets(
        &self,
        _group: &str,
        _topic: &str,
    ) -> Result<Option<event_sink::StoredOffsets>, ReadModelError> {
        Ok(None)
    }

    /// The stored checkpoint (0 when none).
    async fn checkpoint(&self) -> Result<u64, ReadModelError>;

    async fn list_wallets(&self, query: WalletListQuery)
        -> Result<Vec<WalletView>, ReadModelError>;
}

impl event_sink::Transience for ReadModelError {
    /// Whether the same apply may succeed later: the store away or busy, or a
    /// gap the next batch fills. A consumer retries it without end.
    fn is_transient(&self) -> bool {
        match self {
            // Damage is retried too: the events wait in the log, none is
            // dead-lettered for a fault of the file, until it is rebuilt.
            ReadModelError::Unavailable(_)
            | ReadModelError::Gap { .. }
            | ReadModelError::Damaged(_) => true,
            ReadModelError::Corrupt(_)
            | ReadModelError::Refused(_)
            | ReadModelError::OffsetsMoved(_) => false,
        }
    }
}
