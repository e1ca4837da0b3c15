//! What every store of the ledger shares around the posting rules: the
//! transactions a batch becomes before anything is written, the entry as it is
//! read back, and the totals a summary and a verification are assembled from.
//!
//! The stores differ only in how they write rows and run queries; every rule
//! about what is written and what a result means lives here or in
//! [`crate::posting`], once.

use chrono::{DateTime, Utc};
use event_store::RecordedEvent;
use rust_decimal::Decimal;
use uuid::Uuid;
use wallet_domain::WalletId;

use crate::posting::{postings, Account, LedgerTransaction, TransactionType};
use crate::{
    entry_id, EntryFilter, EntryType, LedgerEntry, LedgerError, LedgerVerification, PostOutcome,
    WalletSummary,
};

/// A transaction ready to write: made by the posting rules, checked to
/// balance, with its event's position in the range the stores keep.
pub(crate) struct PreparedTransaction {
    pub position: i64,
    pub transaction: LedgerTransaction,
}

/// The transactions of a batch, in batch order. Refuses the whole batch
/// before anything is written when one transaction would not balance or a
/// position does not fit.
fn prepare(events: &[RecordedEvent]) -> Result<Vec<PreparedTransaction>, LedgerError> {
    events
        .iter()
        .map(|recorded| {
            let transaction = postings(recorded);
            if !transaction.sum().is_zero() {
                return Err(LedgerError::Unbalanced(transaction.id));
            }
            Ok(PreparedTransaction {
                position: stored_position(recorded.position)?,
                transaction,
            })
        })
        .collect()
}

/// A batch ready to write: its transactions and its checkpoint as stored.
pub(crate) struct PreparedBatch {
    pub transactions: Vec<PreparedTransaction>,
    pub checkpoint: Option<i64>,
}

pub(crate) fn prepare_batch(
    events: &[RecordedEvent],
    checkpoint: Option<u64>,
) -> Result<PreparedBatch, LedgerError> {
    Ok(PreparedBatch {
        transactions: prepare(events)?,
        checkpoint: checkpoint.map(stored_position).transpose()?,
    })
}

/// Reports what a store did with a batch.
pub(crate) fn posted(outcome: PostOutcome, checkpoint: Option<i64>) -> PostOutcome {
    tracing::debug!(
        posted = outcome.posted,
        skipped = outcome.skipped,
        ?checkpoint,
        "ledger batch posted"
    );
    outcome
}

/// A log position (or checkpoint) as the stores keep it: a signed 64-bit integer.
pub(crate) fn stored_position(position: u64) -> Result<i64, LedgerError> {
    i64::try_from(position).map_err(|_| LedgerError::PositionOutOfRange(position))
}

/// `(limit, offset)` of a filtered query; an offset past what a store can
/// count is past the end.
pub(crate) fn page(filter: &EntryFilter) -> (i64, i64) {
    let offset = filter
        .offset
        .map_or(0, |offset| i64::try_from(offset).unwrap_or(i64::MAX));
    (i64::from(filter.effective_limit()), offset)
}

/// One entry as a store keeps it: a signed amount on an account, with the
/// columns of its transaction.
pub(crate) struct StoredEntry {
    pub transaction_id: Uuid,
    pub line: u32,
    pub account: Account,
    /// Positive increases the account.
    pub amount: Decimal,
    pub reference_id: Uuid,
    pub transaction_type: TransactionType,
    pub wallet_id: WalletId,
    pub occurred_at: DateTime<Utc>,
    pub description: String,
}

impl From<StoredEntry> for LedgerEntry {
    fn from(stored: StoredEntry) -> Self {
        // The rules never write a zero amount, so the sign alone is the direction.
        let entry_type = if stored.amount > Decimal::ZERO {
            EntryType::Credit
        } else {
            EntryType::Debit
        };
        LedgerEntry {
            id: entry_id(stored.transaction_id, stored.line),
            transaction_id: stored.transaction_id,
            reference_id: stored.reference_id,
            wallet_id: stored.wallet_id,
            account: stored.account,
            entry_type,
            transaction_type: stored.transaction_type,
            amount: stored.amount.abs(),
            description: stored.description,
            created_at: stored.occurred_at,
        }
    }
}

/// Totals of one wallet: what its transactions brought in, what they took
/// out (as a positive number), and how many moved its money. A transaction
/// counts by its net amount on the wallet's two accounts (its own and its
/// held sub-account), so a hold placed, voided or expired, which moves money
/// between the two, is neither.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub credits: Decimal,
    pub debits: Decimal,
    pub count: u64,
}

impl Totals {
    /// Adds one transaction's net amount on the wallet.
    pub fn add(&mut self, net: Decimal) -> Result<(), LedgerError> {
        if net > Decimal::ZERO {
            self.credits = checked_sum(self.credits, net)?;
        } else if net < Decimal::ZERO {
            self.debits = checked_sum(self.debits, -net)?;
        } else {
            return Ok(());
        }
        self.count += 1;
        Ok(())
    }

    /// The summary of `wallet_id` with these totals and `newest_entry`.
    pub fn summary(
        self,
        wallet_id: &WalletId,
        newest_entry: Option<LedgerEntry>,
    ) -> Result<WalletSummary, LedgerError> {
        Ok(WalletSummary {
            wallet_id: wallet_id.clone(),
            balance: self
                .credits
                .checked_sub(self.debits)
                .ok_or(LedgerError::Overflow)?,
            total_credits: self.credits,
            total_debits: self.debits,
            entry_count: self.count,
            newest_entry,
        })
    }
}

pub(crate) fn checked_sum(total: Decimal, amount: Decimal) -> Result<Decimal, LedgerError> {
    total.checked_add(amount).ok_or(LedgerError::Overflow)
}

/// The ledger is sound when nothing is unbalanced, no transfer misses a half
/// and every processed event has its transaction.
pub(crate) fn judged(verification: LedgerVerification) -> LedgerVerification {
    LedgerVerification {
        ok: verification.unbalanced_transactions.is_empty()
            && verification.transfers_missing_half.is_empty()
            && verification.events_posted == verification.transactions_checked,
        ..verification
    }
}
