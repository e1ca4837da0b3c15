//! Crash-safe transfers for event stores that append one stream at a time
//! (KurrentDB through its Rust client): a transfer is no longer one atomic
//! append to two wallet streams but a process whose every step is one
//! single-stream append, recorded in a [`TransferJournal`].
//!
//! 1. **Intent**: the request (wallets, amount, metadata, the idempotency
//!    fingerprint, the time) is recorded as the transfer's first record, with
//!    "no record yet" as the expectation; with an idempotency key the
//!    transfer id is derived from the key, so a retry finds its transfer.
//!    Refusals known before (unknown wallet: 404, insufficient funds,
//!    same wallet) record nothing, as on the atomic path.
//! 2. **Debit**: `TransferSent` on the payer; refused (funds spent since the
//!    check) ends the transfer as failed, nothing moved.
//! 3. **Credit**: `TransferReceived` on the payee; refused (the payee's
//!    balance would overflow) compensates: `TransferReversed` gives the payer
//!    its money back, and the transfer ends as failed with that refusal.
//! 4. **End**: the reply (status and body) or the refusal is recorded; every
//!    retry with the same key gets it.
//!
//! Between steps the journal records `Debited`, `Credited` or `Compensated`.
//! Each wallet event has an id derived from the transfer id and is appended
//! only after the wallet's stream was searched for it, at the version the
//! search read: a step replayed after a crash finds its event instead of
//! repeating it. A request retry resumes its unfinished transfer; beside
//! serving (from start-up on, never before it), command-api periodically calls
//! [`TransferProcess::resume_unfinished`], which finishes every transfer the
//! journal holds open, each on its own, and sets aside (quarantines) one that
//! failed [`RESUME_ATTEMPTS_MAX`] times in a row.
//!
//! A capture of a hold to another wallet runs the same way (its intent
//! names the hold, see [`TransferIntent::hold_id`]): the refusals
//! `decide_capture` gives first record nothing, and the amount it decides is
//! the intent's; then the payer's `HoldCaptured`, the payee's
//! `HoldCaptureReceived`, or, when the payee refuses it, the payer's
//! `HoldCaptureReversed` (the hold stays captured, the money is the payer's
//! again); each half's command is the one the domain derives from the
//! capture (`capture_halves`), and the reply is the hold as the capture left it.
//!
//! What an observer may see: between the debit and the credit (or the
//! reversal) a transfer is in flight, as a bank transfer is, and its money
//! sits in the ledger's clearing account. The request is answered only once
//! the transfer has ended, and a crash in between is finished by the next
//! start-up or retry, never left half done.

mod embedded;
mod journal;
mod process;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(test)]
mod tests;

pub use embedded::{EmbeddedTransferJournal, JOURNAL_FILE};
pub use journal::{
    Ending, JournalError, JournalRecord, TransferIntent, TransferJournal, KEY_RELEASES_MAX,
    STREAM_RECORDS_MAX, TRANSFER_RECORDS_MAX,
};
#[cfg(any(test, feature = "conformance"))]
pub(crate) use process::Half;
pub use process::{
    transfer_id_for_key, CaptureRequest, ProcessError, Resumption, Step, TransferAnswer,
    TransferProcess, TransferReply, TransferRequest, IN_FLIGHT_GRACE_MS, JOURNAL_ROUNDS_MAX,
    RESUME_ATTEMPTS_MAX, RESUME_BATCHES_MAX, RESUME_BATCH_SIZE, RESUME_FAILURES_TRACKED_MAX,
    STEP_CONFLICT_ATTEMPTS_MAX,
};
