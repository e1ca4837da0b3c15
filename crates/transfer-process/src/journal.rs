//! The `TransferJournal` port: each transfer's records, in order, appended
//! with the number of records the writer expects (a stale count is a
//! conflict, as with wallet streams), and the transfers still open.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wallet_domain::{Amount, Description, DomainError, EventMetadata, HoldId, WalletId};

/// Records of one transfer at most: the intent, the debit, the credit or the
/// compensation, the end.
pub const TRANSFER_RECORDS_MAX: usize = 4;
/// Claims of one idempotency key released at most (each a
/// [`JournalRecord::KeyClaimed`] and its [`JournalRecord::KeyReleased`]),
/// so a key's stream stays bounded however often requests with it are
/// refused after claiming it: past this many, a refused request's claim
/// stays, and another request with the key is refused as a reuse of it.
pub const KEY_RELEASES_MAX: usize = 8;
/// Records of one journal stream at most: the released claims of its key,
/// then a transfer's records (or one claim). A stream with more is corrupt.
pub const STREAM_RECORDS_MAX: usize = 2 * KEY_RELEASES_MAX + TRANSFER_RECORDS_MAX;

/// What was asked: recorded first, before any money moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransferIntent {
    pub from_wallet_id: WalletId,
    pub to_wallet_id: WalletId,
    pub amount: Amount,
    pub description: Option<Description>,
    /// Carried by every wallet event of the transfer.
    pub metadata: EventMetadata,
    /// The request's digest when it had an idempotency key: a retry with the
    /// same key and another request is refused.
    pub request_fingerprint: Option<String>,
    /// The time of every wallet event of the transfer, however late a
    /// resumption appends them.
    pub initiated_at: DateTime<Utc>,
    /// Present when the transfer is the capture of this hold (of the payer)
    /// to the payee: its halves are then `HoldCaptured` of `amount` (the
    /// amount the capture takes, decided before the intent is recorded),
    /// `HoldCaptureReceived` and, when the payee refuses, `HoldCaptureReversed`.
    /// Absent from the intents of plain transfers, and of those recorded
    /// before captures ran as a process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<HoldId>,
}

/// How a transfer ended: the reply to give every retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Ending {
    /// Both halves are stored; `body` is the reply the request got (or would have).
    Completed { status: u16, body: String },
    /// No money moved (refused at the debit, or the debit was reversed).
    Failed { refusal: DomainError },
}

/// One record of a transfer's journal. Externally tagged JSON: money inside
/// stays exact (internally tagged enums would buffer the numbers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JournalRecord {
    Initiated(TransferIntent),
    /// `TransferSent` (a capture's `HoldCaptured`) is stored on the payer.
    Debited,
    /// `TransferReceived` (a capture's `HoldCaptureReceived`) is stored on the payee.
    Credited,
    /// The payee refused the credit and `TransferReversed` (a capture's
    /// `HoldCaptureReversed`) is stored on the payer.
    Compensated {
        refusal: DomainError,
    },
    Finished(Ending),
    /// The Idempotency-Key that names this journal's stream
    /// ([`crate::transfer_id_for_key`]) was taken by a request that is not a
    /// transfer (a credit, a debit, a hold placement...), with this request
    /// fingerprint, before its events were appended. The last record of its
    /// stream unless a [`JournalRecord::KeyReleased`] follows it: a transfer
    /// with the same key finds it and is refused as a reuse of the key, so
    /// one key is claimed by one request even when a transfer and another
    /// command race with it. It opens nothing.
    KeyClaimed {
        request_fingerprint: String,
        /// When it was claimed: a claim kept past the stored answers'
        /// retention expires with them ([`crate::TransferProcess::with_claims_expiring_after`]).
        /// Absent from claims recorded before claims expired: those never do.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        claimed_at: Option<DateTime<Utc>>,
    },
    /// The claim right before it was released: its request was refused and
    /// stored nothing, so the key is free again (as on the atomic path,
    /// where a refused request stores no key), for a new claim or a
    /// transfer's intent appended after it. It opens nothing.
    KeyReleased,
}

impl JournalRecord {
    /// Whether the transfer is open after this record (an intent opens it,
    /// its end closes it, the steps between leave it as it was).
    pub fn opens_or_closes(&self) -> Option<bool> {
        match self {
            JournalRecord::Initiated(_) => Some(true),
            JournalRecord::Finished(_) => Some(false),
            _ => None,
        }
    }

    /// The record's kind, as a store that types its events names it.
    pub fn type_name(&self) -> &'static str {
        match self {
            JournalRecord::Initiated(_) => "TransferInitiated",
            JournalRecord::Debited => "TransferDebited",
            JournalRecord::Credited => "TransferCredited",
            JournalRecord::Compensated { .. } => "TransferCompensated",
            JournalRecord::Finished(_) => "TransferFinished",
            JournalRecord::KeyClaimed { .. } => "IdempotencyKeyClaimed",
            JournalRecord::KeyReleased => "IdempotencyKeyReleased",
        }
    }

    pub fn to_json(&self) -> Result<String, JournalError> {
        serde_json::to_string(self).map_err(|error| JournalError::Corrupt(error.to_string()))
    }

    pub fn from_json(transfer_id: Uuid, data: &[u8]) -> Result<Self, JournalError> {
        serde_json::from_slice(data).map_err(|error| {
            JournalError::Corrupt(format!("record of transfer {transfer_id}: {error}"))
        })
    }

    /// A stream's stored records, read with a limit of one more than
    /// [`STREAM_RECORDS_MAX`] (so too many is seen), decoded in order.
    pub fn decode_all<T: AsRef<[u8]>>(
        transfer_id: Uuid,
        stored: &[T],
    ) -> Result<Vec<Self>, JournalError> {
        if stored.len() > STREAM_RECORDS_MAX {
            return Err(JournalError::Corrupt(format!(
                "transfer {transfer_id} has more than {STREAM_RECORDS_MAX} records"
            )));
        }
        stored
            .iter()
            .map(|data| Self::from_json(transfer_id, data.as_ref()))
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("transfer {transfer_id} has another number of records than the {expected} expected")]
    Conflict { transfer_id: Uuid, expected: u64 },
    #[error("transfer journal unavailable: {0}")]
    Unavailable(String),
    /// The journal refused the record and wrote nothing of it (its disk is
    /// full, or its file was moved): unlike [`JournalError::Unavailable`],
    /// the record is known not to be there.
    #[error("transfer journal refused the record, nothing of it written: {0}")]
    Refused(String),
    #[error("transfer journal corrupt: {0}")]
    Corrupt(String),
    /// The journal's file was found damaged (embedded default): nothing is
    /// read from or written to it until an operator repairs it and restarts
    /// the server; no retry helps meanwhile.
    #[error("transfer journal damaged: {0}")]
    Damaged(String),
    /// The journal's file, its folder or its `-wal` was moved, deleted or
    /// replaced while the server ran (embedded default): nothing is written
    /// to it again, and nothing of the refused record was; no retry helps
    /// until an operator restarts the server on the folder that holds it.
    #[error("transfer journal moved: {0}")]
    Moved(String),
}

#[async_trait]
pub trait TransferJournal: Send + Sync {
    /// Appends `record` as the transfer's record number `expected_records + 1`;
    /// [`JournalError::Conflict`] when the transfer has another number of
    /// records. Keeps the open transfers in step with the record (see
    /// [`JournalRecord::opens_or_closes`]).
    ///
    /// `log_position` is the event log's position of the wallet event the
    /// record says is stored (`Debited`, `Credited`, `Compensated`), 0 for
    /// a record that follows none; see [`TransferJournal::log_position`].
    async fn append(
        &self,
        transfer_id: Uuid,
        expected_records: u64,
        record: &JournalRecord,
        log_position: u64,
    ) -> Result<(), JournalError>;

    /// The greatest event-log position a record was appended with (0 when
    /// none): a log whose head is before it is older than the journal
    /// (restored from an older copy, or cut short), and lacks wallet events
    /// the journal says are stored. A journal stored in the same store as
    /// the log (KurrentDB), restored with it, answers 0.
    async fn log_position(&self) -> Result<u64, JournalError>;

    /// The stream's records in order (none when it was never initiated nor
    /// its key claimed), at most [`STREAM_RECORDS_MAX`].
    async fn read(&self, transfer_id: Uuid) -> Result<Vec<JournalRecord>, JournalError>;

    /// Up to `limit` transfers initiated and not finished, oldest first,
    /// without scanning finished ones. May name a transfer that has just
    /// finished: resuming one is harmless.
    async fn unfinished(&self, limit: usize) -> Result<Vec<Uuid>, JournalError>;

    /// What keeps the journal's storage from taking any request until an
    /// operator acts (its file, on the embedded default: found damaged, or
    /// moved, deleted or replaced while the server ran). `None` otherwise.
    fn damage(&self) -> Option<String>;
}
