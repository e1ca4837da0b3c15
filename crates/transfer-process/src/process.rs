//! [`TransferProcess`]: drives one transfer from its recorded intent to its
//! end, one single-stream append at a time, so that any crash leaves a state
//! the next run (a retry of the request, or start-up) completes.
//!
//! Each step is idempotent: a wallet event of the transfer has an id derived
//! from the transfer id, and before appending it the process looks for that
//! id in the wallet's stream; the append itself carries the version the
//! stream was read at, so two runners of one transfer cannot both append it.
//! The journal's records are appended with the count of records read, so two
//! runners cannot both advance it either: the loser rereads and goes on.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use event_store::{
    evolve_checked, read_tail, save_snapshot_of, AppendError, AppendRequest, EventStore,
    StoreError, StreamAppend,
};
use observability::{FailureStreak, Failures};
use uuid::Uuid;
use wallet_domain::{
    capture_halves, decide, decide_capture, decide_transfer, evolve, hold_after, holds_in, Command,
    CommandKind, DomainError, EventKind, EventMetadata, Hold, HoldId, Wallet, WalletId,
    WalletState,
};

use crate::journal::{
    Ending, JournalError, JournalRecord, TransferIntent, TransferJournal, KEY_RELEASES_MAX,
};

/// Reads and appends of one step when the wallet's version keeps changing.
pub const STEP_CONFLICT_ATTEMPTS_MAX: usize = 16;
/// Journal appends of one run: the four records of a transfer, plus room for
/// conflicts with another runner of the same transfer.
pub const JOURNAL_ROUNDS_MAX: usize = 16;
/// Reads of a transfer's journal by one request: the second reads the intent
/// a concurrent request with the same key recorded first, or the stream
/// after an expired claim of its key was released (a third then reads the
/// intent recorded concurrently).
const INTENT_ROUNDS_MAX: usize = 3;
/// Batches of unfinished transfers one resumption takes at most.
pub const RESUME_BATCHES_MAX: usize = 1_000;
/// Unfinished transfers read per batch when resuming.
pub const RESUME_BATCH_SIZE: usize = 100;
/// Resumptions of one transfer that fail in a row before the sweep sets it
/// aside (quarantine): it is then left to its client's retry and to an
/// operator, and no longer tried by [`TransferProcess::resume_unfinished`].
pub const RESUME_ATTEMPTS_MAX: u32 = 5;
/// Transfers whose failed resumptions are counted at most; beyond it a
/// failing transfer is simply tried again by every sweep.
pub const RESUME_FAILURES_TRACKED_MAX: usize = 10_000;

/// Milliseconds a transfer's own request is presumed to be running it after
/// its intent is recorded: a periodic sweep leaves younger transfers to their
/// requests (resuming one beside its request is harmless, as each step appends
/// at the version it read, but it is wasted work and hides real resumptions in
/// the sweep's count). A request's run takes milliseconds; this is the margin
/// for a slow one.
pub const IN_FLIGHT_GRACE_MS: i64 = 5_000;
/// Unfinished transfers [`TransferProcess::unfinished_from`] reads at most;
/// past it, it counts them all as the wallet's (a backlog that large leaves
/// no wallet closable until the sweep has worked it down).
pub const UNFINISHED_SCAN_MAX: usize = 10_000;

/// Namespace of the transfer ids derived from idempotency keys.
const TRANSFER_KEY_NAMESPACE: Uuid = Uuid::from_u128(0x6d1f_3a0c_52b4_4e8f_9a67_0c1e_8b2d_47f5);

/// The transfer id of a request with this idempotency key: a retry finds the
/// transfer its first attempt recorded.
pub fn transfer_id_for_key(key: &str) -> Uuid {
    Uuid::new_v5(&TRANSFER_KEY_NAMESPACE, key.as_bytes())
}

/// The durable steps of a transfer, in order; each is where a crash may
/// stop the process (the tests stop it after each one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The intent is in the journal.
    Intent,
    /// `TransferSent` is on the payer's stream.
    Debit,
    DebitRecorded,
    /// `TransferReceived` is on the payee's stream.
    Credit,
    CreditRecorded,
    /// `TransferReversed` is on the payer's stream.
    Reversal,
    ReversalRecorded,
    /// The end is in the journal.
    Finish,
}

/// How the reply of a completed transfer is written: the payer after its
/// debit and the payee after its credit, as the API shows them; for the
/// capture of a hold, the hold as the capture left it.
#[derive(Clone, Copy)]
pub struct TransferReply {
    pub status: u16,
    /// The body of a transfer's reply: the transfer's id, the payer and the
    /// payee as the transfer left them.
    pub render: fn(Uuid, &Wallet, &Wallet) -> Result<String, serde_json::Error>,
    pub render_capture: fn(&Hold) -> Result<String, serde_json::Error>,
}

#[derive(Debug, Clone)]
pub struct TransferRequest {
    pub transfer_id: Uuid,
    pub intent: TransferIntent,
}

/// A capture of a hold to another wallet, run as a transfer: `capture` is a
/// `CaptureHold` command with a `to_wallet_id` (its event id is replaced by
/// one derived from the transfer id; its `amount`, when absent, is the
/// hold's whole amount, as the domain decides it).
#[derive(Debug, Clone)]
pub struct CaptureRequest {
    pub transfer_id: Uuid,
    pub capture: Command,
    /// The request's digest when it had an idempotency key.
    pub request_fingerprint: Option<String>,
}

/// What a request asks the process to run.
#[derive(Clone, Copy)]
enum Order<'a> {
    Transfer(&'a TransferIntent),
    Capture(&'a CaptureRequest),
}

impl<'a> Order<'a> {
    fn request_fingerprint(self) -> &'a Option<String> {
        match self {
            Order::Transfer(intent) => &intent.request_fingerprint,
            Order::Capture(request) => &request.request_fingerprint,
        }
    }

    fn idempotency_key(self) -> Option<String> {
        let metadata = match self {
            Order::Transfer(intent) => &intent.metadata,
            Order::Capture(request) => &request.capture.metadata,
        };
        metadata.idempotency_key.clone()
    }
}

/// The answer to a transfer request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferAnswer {
    pub ending: Ending,
    /// True when an earlier request with the same key recorded the transfer.
    pub replayed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("Idempotency-Key {0:?} was already used for a different request")]
    KeyReused(String),
    #[error("wallet {wallet_id} changed too often during a step of transfer {transfer_id}")]
    Contended {
        transfer_id: Uuid,
        wallet_id: WalletId,
    },
    #[error("transfer {transfer_id}: {reason}")]
    Corrupt { transfer_id: Uuid, reason: String },
    #[error("transfer {transfer_id} cannot be reversed: {refusal}")]
    ReversalRefused {
        transfer_id: Uuid,
        refusal: DomainError,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The transfer's first record, its intent, was refused: nothing of the
    /// transfer was done, and a retry starts it afresh.
    #[error("transfer {transfer_id} was not started: {source}")]
    NotStarted {
        transfer_id: Uuid,
        #[source]
        source: JournalError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The event store failed a step after the transfer's intent was
    /// recorded: the transfer stands unfinished in the journal, and a retry
    /// with its key, or the next sweep ([`TransferProcess::resume_unfinished`]),
    /// takes it to its end. Unlike [`ProcessError::Store`] before the intent,
    /// this is never "nothing was applied" (tester h136 F1: a full disk
    /// answered so, and the sweep moved the money later).
    #[error("transfer {transfer_id} is recorded but unfinished: {source}")]
    Unfinished {
        transfer_id: Uuid,
        #[source]
        source: StoreError,
    },
    #[error("could not encode the reply: {0}")]
    Render(#[from] serde_json::Error),
    #[error("transfer {0}: a capture request that is no capture of a hold to another wallet")]
    NotACapture(Uuid),
    #[cfg(test)]
    #[error("crashed (on purpose) after step {0:?}")]
    Crashed(Step),
}

impl ProcessError {
    /// True when the storage failed, not the transfer: the event store or
    /// the journal away, full, refusing writes, damaged or moved. Every
    /// transfer fails alike meanwhile, so such a failure does not count
    /// toward a transfer's quarantine (tester h138 F1: a store full for 50 s
    /// set every unfinished transfer aside, with money in flight until a
    /// restart).
    pub fn is_storage_fault(&self) -> bool {
        match self {
            ProcessError::Store(error) | ProcessError::Unfinished { source: error, .. } => {
                matches!(
                    error,
                    StoreError::Unavailable(_)
                        | StoreError::OutcomeUnknown { .. }
                        | StoreError::Damaged(_)
                        | StoreError::Moved(_)
                )
            }
            ProcessError::Journal(error) | ProcessError::NotStarted { source: error, .. } => {
                matches!(
                    error,
                    JournalError::Unavailable(_)
                        | JournalError::Refused(_)
                        | JournalError::Damaged(_)
                        | JournalError::Moved(_)
                )
            }
            _ => false,
        }
    }
}

/// Where a transfer stands, folded from its journal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Progress {
    Initiated,
    Debited,
    Credited,
    Compensated(DomainError),
    Finished(Ending),
}

/// A wallet event of a transfer as the log holds it.
struct Stored {
    /// The wallet as it stood right after the event.
    wallet: Wallet,
    /// The event's position in the event log, which the journal record
    /// saying it is stored carries (see [`TransferJournal::log_position`]).
    position: u64,
}

/// A wallet's stream looked up for one event of a transfer.
enum Lookup {
    /// The event is stored.
    Found(Stored),
    /// Not stored; the wallet's whole state, to decide the event on.
    Missing(WalletState),
}

/// What one [`TransferProcess::resume_unfinished`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resumption {
    /// Unfinished transfers taken to their end.
    pub resumed: usize,
    /// Transfers whose resumption failed this time (each on its own: the
    /// others went on).
    pub failed: usize,
    /// Unfinished transfers initiated after the cutoff, left to their requests.
    pub in_flight: usize,
    /// Transfers set aside after [`RESUME_ATTEMPTS_MAX`] failures in a row,
    /// all of them, not only this time's.
    pub quarantined: usize,
    /// The wallets whose streams the tried transfers may have changed.
    pub touched: Vec<WalletId>,
}

/// What became of one unfinished transfer a resumption tried.
enum Resumed {
    /// Taken to its end now.
    Finished,
    /// It had ended since the journal listed it.
    AlreadyFinished,
    /// Initiated after the cutoff: its request is presumed to be running it.
    InFlight,
}

pub struct TransferProcess {
    store: Arc<dyn EventStore>,
    journal: Arc<dyn TransferJournal>,
    reply: TransferReply,
    /// Failed resumptions in a row, by transfer.
    resume_failures: Mutex<HashMap<Uuid, u32>>,
    /// How the journal's appends have been ending, for `/health`: the
    /// journal may fail while the event store works (tester h138 F3).
    journal_writes: FailureStreak,
    /// How the sweep's resumptions have been ending, for `/health`: no
    /// request may come while transfers wait on a store that refuses them
    /// (tester h139 N1).
    resumptions: FailureStreak,
    /// How long a key's claim stands ([`Self::with_claims_expiring_after`]);
    /// `None`: for good.
    claims_expire_after: Option<chrono::Duration>,
    #[cfg(test)]
    pub(crate) crash_after: Option<Step>,
}

impl TransferProcess {
    pub fn new(
        store: Arc<dyn EventStore>,
        journal: Arc<dyn TransferJournal>,
        reply: TransferReply,
    ) -> Self {
        Self {
            store,
            journal,
            reply,
            resume_failures: Mutex::new(HashMap::new()),
            journal_writes: FailureStreak::default(),
            resumptions: FailureStreak::default(),
            claims_expire_after: None,
            #[cfg(test)]
            crash_after: None,
        }
    }

    /// The process whose claims of idempotency keys ([`Self::claim_key`])
    /// expire once `after` old, as the stored answers of the event store
    /// do: an expired claim is released at the next use of its key, which
    /// any request may then claim, or a transfer record its intent under
    /// (h141 F1: a claim kept for good refused another request with the key
    /// while its own request, its stored answer purged, ran again). Pass
    /// the answers' retention plus the time their purge may take, so a
    /// claim outlives its answer. A transfer's intent never expires. Past
    /// [`KEY_RELEASES_MAX`] released claims of a key, an expired claim
    /// stays, as a refused request's does.
    pub fn with_claims_expiring_after(mut self, after: chrono::Duration) -> Self {
        self.claims_expire_after = Some(after);
        self
    }

    /// Claims made before this instant have expired, when claims expire.
    fn claims_expire_before(&self) -> Option<DateTime<Utc>> {
        self.claims_expire_after.map(|after| Utc::now() - after)
    }

    /// Releases the expired claim that `records` begin with, if they do and
    /// it may be released ([`KeyHolder::Expired`]); says whether it did, or
    /// whether the stream moved meanwhile (to be read again either way).
    async fn release_if_expired(
        &self,
        stream: Uuid,
        records: &Stream,
        holder: KeyHolder,
    ) -> Result<bool, ProcessError> {
        if holder != KeyHolder::Expired {
            return Ok(false);
        }
        match self
            .append_record(stream, records.expected(), &JournalRecord::KeyReleased, 0)
            .await
        {
            Ok(()) | Err(JournalError::Conflict { .. }) => Ok(true),
            Err(error) => Err(error.into()),
        }
    }

    /// Runs the transfer of `request`, or, when an earlier request with the
    /// same transfer id recorded it, answers as that one did (resuming it if
    /// it is unfinished). Refusals known before anything moves (an unknown
    /// wallet, the same wallet twice, insufficient funds, a payee that cannot
    /// take the amount) record nothing.
    pub async fn run(&self, request: TransferRequest) -> Result<TransferAnswer, ProcessError> {
        self.start(request.transfer_id, Order::Transfer(&request.intent))
            .await
    }

    /// Runs the capture of `request` as a transfer (the payer's
    /// `HoldCaptured`, then the payee's `HoldCaptureReceived`, or, when the
    /// payee refuses it, the payer's `HoldCaptureReversed`), or answers as
    /// an earlier request with the same transfer id did. Refusals
    /// [`decide_capture`] gives before anything moves record nothing.
    pub async fn capture(&self, request: CaptureRequest) -> Result<TransferAnswer, ProcessError> {
        self.start(request.transfer_id, Order::Capture(&request))
            .await
    }

    async fn start(
        &self,
        transfer_id: Uuid,
        order: Order<'_>,
    ) -> Result<TransferAnswer, ProcessError> {
        for _ in 0..INTENT_ROUNDS_MAX {
            let stream = self.read_stream(transfer_id).await?;
            let holder = self.key_holder(&stream, order.request_fingerprint().as_deref());
            if self
                .release_if_expired(transfer_id, &stream, holder)
                .await?
            {
                continue;
            }
            if let Some(JournalRecord::KeyClaimed { .. }) = stream.current.first() {
                // Another kind of request took the key first.
                let key = order.idempotency_key().unwrap_or_default();
                return Err(ProcessError::KeyReused(key));
            }
            if !stream.current.is_empty() {
                let intent = intent_of(transfer_id, &stream.current)?;
                if &intent.request_fingerprint != order.request_fingerprint() {
                    let key = order.idempotency_key().unwrap_or_default();
                    return Err(ProcessError::KeyReused(key));
                }
                let ending = self.drive_recorded(transfer_id, &intent, stream).await?;
                // Finished by its request's retry: no longer set aside (h138 F2).
                self.failures().remove(&transfer_id);
                return Ok(TransferAnswer {
                    ending,
                    replayed: true,
                });
            }
            let intent = match self.intent_before_start(transfer_id, order).await? {
                Ok(intent) => intent,
                Err(refusal) => {
                    return Ok(TransferAnswer {
                        ending: Ending::Failed { refusal },
                        replayed: false,
                    })
                }
            };
            // After the key's released claims, if any.
            let initiated = JournalRecord::Initiated(intent.clone());
            let expected = stream.expected();
            match self
                .append_record(transfer_id, expected, &initiated, 0)
                .await
            {
                Ok(()) => {
                    self.reached(transfer_id, Step::Intent)?;
                    let stream = stream.with(initiated);
                    let ending = self.drive_recorded(transfer_id, &intent, stream).await?;
                    return Ok(TransferAnswer {
                        ending,
                        replayed: false,
                    });
                }
                Err(JournalError::Conflict { .. }) => continue,
                Err(source @ (JournalError::Refused(_) | JournalError::Moved(_))) => {
                    return Err(ProcessError::NotStarted {
                        transfer_id,
                        source,
                    })
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(ProcessError::Corrupt {
            transfer_id,
            reason: "the intent conflicts yet cannot be read".into(),
        })
    }

    /// How many unfinished transfers (and captures to another wallet) take
    /// money out of `wallet_id`: a wallet with one must not close, since the
    /// compensation of a transfer whose payee refuses it brings the money
    /// back to it. Reads the intent of each unfinished transfer, at most
    /// [`UNFINISHED_SCAN_MAX`] of them (more count as that many).
    pub async fn unfinished_from(&self, wallet_id: &WalletId) -> Result<usize, ProcessError> {
        let unfinished = self.journal.unfinished(UNFINISHED_SCAN_MAX + 1).await?;
        if unfinished.len() > UNFINISHED_SCAN_MAX {
            return Ok(unfinished.len());
        }
        let mut from_wallet = 0;
        for transfer_id in unfinished {
            let records = self.read_stream(transfer_id).await?.current;
            // A journal may name one that has just finished; one whose records
            // do not follow each other (quarantined) is not finished.
            if let Ok(Progress::Finished(_)) = progress(transfer_id, &records) {
                continue;
            }
            match intent_of(transfer_id, &records) {
                Ok(intent) if intent.from_wallet_id == *wallet_id => from_wallet += 1,
                Ok(_) => {}
                // No intent to read: it names no wallet, so it holds up none.
                Err(error) => {
                    tracing::warn!(%transfer_id, %error, "an unfinished transfer has no intent")
                }
            }
        }
        Ok(from_wallet)
    }

    /// Whether `key` is taken in the journal by another request than the
    /// one fingerprinted `request_fingerprint`: a transfer (or a capture to
    /// another wallet) recorded under it, or another command's claim
    /// ([`Self::claim_key`]). A request the rules refuse answers 422 rather
    /// than its refusal when another request has its key, as on the store.
    pub async fn key_held_by_another(
        &self,
        key: &str,
        request_fingerprint: &str,
    ) -> Result<bool, ProcessError> {
        let stream = self.read_stream(transfer_id_for_key(key)).await?;
        Ok(self.key_holder(&stream, Some(request_fingerprint)) == KeyHolder::Another)
    }

    /// Claims `key` for a request that is not a transfer (nor a capture to
    /// another wallet), fingerprinted `request_fingerprint`, before its
    /// events are appended: the journal's stream the key names takes a
    /// [`JournalRecord::KeyClaimed`] as its first record (after the claims
    /// released, [`Self::release_key`]), under the same uniqueness that
    /// makes two transfers with one key run once. A claim by the same
    /// request (a retry) stands.
    ///
    /// # Errors
    /// [`ProcessError::KeyReused`] when a transfer, or another request, took
    /// the key; [`ProcessError::Journal`] when the journal cannot say (no
    /// claim was recorded unless it answers later that one was).
    pub async fn claim_key(
        &self,
        key: &str,
        request_fingerprint: &str,
    ) -> Result<(), ProcessError> {
        let stream = transfer_id_for_key(key);
        let claim = JournalRecord::KeyClaimed {
            request_fingerprint: request_fingerprint.to_owned(),
            claimed_at: Some(Utc::now()),
        };
        for _ in 0..INTENT_ROUNDS_MAX {
            let records = self.read_stream(stream).await?;
            match self.key_holder(&records, Some(request_fingerprint)) {
                KeyHolder::Nobody => {}
                KeyHolder::This => return Ok(()),
                KeyHolder::Another => return Err(ProcessError::KeyReused(key.to_owned())),
                expired @ KeyHolder::Expired => {
                    self.release_if_expired(stream, &records, expired).await?;
                    continue;
                }
            }
            match self
                .append_record(stream, records.expected(), &claim, 0)
                .await
            {
                Ok(()) => return Ok(()),
                // Claimed meanwhile: read who took it.
                Err(JournalError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(ProcessError::KeyReused(key.to_owned()))
    }

    /// Releases the claim of `key` by the request fingerprinted
    /// `request_fingerprint` ([`Self::claim_key`]) once that request was
    /// refused and stored nothing: a [`JournalRecord::KeyReleased`] right
    /// after the claim frees the key for another request, as a refused
    /// request leaves its key free on the atomic path. Appended with the
    /// count of records read, as every record: if anything was appended
    /// after the claim meanwhile, nothing is released.
    ///
    /// Returns whether the claim was released: not when the key's newest
    /// claim is not this request's (another's, a transfer's, or none), nor
    /// when its stream holds [`KEY_RELEASES_MAX`] released claims already
    /// (the claim then stays, and only this request may use the key).
    ///
    /// # Errors
    /// [`ProcessError::Journal`] when the journal cannot read or append (the
    /// claim then stays, unless it answers later that it was released).
    pub async fn release_key(
        &self,
        key: &str,
        request_fingerprint: &str,
    ) -> Result<bool, ProcessError> {
        let stream = transfer_id_for_key(key);
        let records = self.read_stream(stream).await?;
        if self.key_holder(&records, Some(request_fingerprint)) != KeyHolder::This
            || records.released / 2 >= KEY_RELEASES_MAX
        {
            return Ok(false);
        }
        let released = JournalRecord::KeyReleased;
        match self
            .append_record(stream, records.expected(), &released, 0)
            .await
        {
            Ok(()) => Ok(true),
            // Not only the claim any more (released by a retry of the same
            // request meanwhile): nothing of anyone else's is released.
            Err(JournalError::Conflict { .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Appends `record` to the journal (see [`TransferJournal::append`]),
    /// keeping how the journal's writes end: a conflict is no failure of it.
    async fn append_record(
        &self,
        transfer_id: Uuid,
        expected_records: u64,
        record: &JournalRecord,
        log_position: u64,
    ) -> Result<(), JournalError> {
        let appended = self
            .journal
            .append(transfer_id, expected_records, record, log_position)
            .await;
        match &appended {
            Ok(()) => {
                if let Some(over) = self.journal_writes.passed() {
                    tracing::info!(
                        failures = over.failures,
                        since = %over.since,
                        "transfer journal writes pass again"
                    );
                }
            }
            Err(JournalError::Conflict { .. }) => {}
            Err(error) => self.journal_writes.failed(error),
        }
        appended
    }

    /// The journal's writes that failed since the last that passed (within
    /// [`observability::FAILURE_REPORT_MS`] of the last); `None` when they pass.
    pub fn journal_write_failures(&self) -> Option<Failures> {
        self.journal_writes.failures()
    }

    /// The sweep's resumptions that failed since the last that finished a
    /// transfer (within [`observability::FAILURE_REPORT_MS`] of the last);
    /// `None` when they pass.
    pub fn resumption_failures(&self) -> Option<Failures> {
        self.resumptions.failures()
    }

    /// The journal stream `transfer_id`, split after its key's released claims.
    async fn read_stream(&self, transfer_id: Uuid) -> Result<Stream, ProcessError> {
        Ok(Stream::of(self.journal.read(transfer_id).await?))
    }

    /// Finishes every transfer that was initiated at or before
    /// `initiated_before` and not finished (at start-up after a crash, or in
    /// a periodic sweep, which passes now minus [`IN_FLIGHT_GRACE_MS`]),
    /// oldest first, each on its own: one that fails is counted and the others
    /// go on; one that has failed [`RESUME_ATTEMPTS_MAX`] times in a row is
    /// quarantined (skipped); younger ones are counted as in flight and left.
    /// A failure of the storage itself ([`ProcessError::is_storage_fault`])
    /// counts toward no quarantine: the next sweep tries again. The round
    /// goes on to the others (a fault met by one transfer's reads alone, a
    /// timeout on a long stream, must not hold up the rest).
    /// Fails only when the journal cannot list the open transfers.
    pub async fn resume_unfinished(
        &self,
        initiated_before: DateTime<Utc>,
    ) -> Result<Resumption, ProcessError> {
        let mut resumption = Resumption::default();
        let mut tried: HashSet<Uuid> = self.quarantined_ids();
        for _ in 0..RESUME_BATCHES_MAX {
            // The ones already tried (or set aside) still head the list.
            let batch = self
                .journal
                .unfinished(RESUME_BATCH_SIZE + tried.len())
                .await?;
            let fresh: Vec<Uuid> = batch
                .into_iter()
                .filter(|transfer_id| !tried.contains(transfer_id))
                .collect();
            if fresh.is_empty() {
                break;
            }
            for transfer_id in fresh {
                tried.insert(transfer_id);
                match self
                    .resume_one(transfer_id, initiated_before, &mut resumption.touched)
                    .await
                {
                    Ok(Resumed::Finished) => {
                        self.failures().remove(&transfer_id);
                        resumption.resumed += 1;
                        self.resumptions.passed();
                    }
                    Ok(Resumed::AlreadyFinished) => {
                        self.failures().remove(&transfer_id);
                    }
                    Ok(Resumed::InFlight) => resumption.in_flight += 1,
                    Err(error) => {
                        resumption.failed += 1;
                        self.resumptions.failed(&error);
                        if error.is_storage_fault() {
                            tracing::warn!(
                                %transfer_id, error = %error,
                                "the storage failed a resumption; the next sweep tries it again"
                            );
                            continue;
                        }
                        let attempts = self.count_failure(transfer_id);
                        tracing::warn!(
                            %transfer_id, attempts, error = %error,
                            quarantined = attempts >= RESUME_ATTEMPTS_MAX,
                            "an unfinished transfer could not be resumed"
                        );
                    }
                }
            }
        }
        resumption.quarantined = self.quarantined_ids().len();
        Ok(resumption)
    }

    /// Transfers the sweep has set aside.
    pub fn quarantined(&self) -> usize {
        self.quarantined_ids().len()
    }

    /// The journal's damage, once found ([`TransferJournal::damage`]).
    pub fn journal_damage(&self) -> Option<String> {
        self.journal.damage()
    }

    /// Resumes one transfer initiated at or before `initiated_before`.
    async fn resume_one(
        &self,
        transfer_id: Uuid,
        initiated_before: DateTime<Utc>,
        touched: &mut Vec<WalletId>,
    ) -> Result<Resumed, ProcessError> {
        let stream = self.read_stream(transfer_id).await?;
        // A journal may name one that has just finished.
        if let Progress::Finished(_) = progress(transfer_id, &stream.current)? {
            return Ok(Resumed::AlreadyFinished);
        }
        let intent = intent_of(transfer_id, &stream.current)?;
        if intent.initiated_at > initiated_before {
            return Ok(Resumed::InFlight);
        }
        touched.push(intent.from_wallet_id.clone());
        touched.push(intent.to_wallet_id.clone());
        let ending = self.drive(transfer_id, &intent, stream).await?;
        tracing::info!(%transfer_id, ?ending, "unfinished transfer resumed");
        Ok(Resumed::Finished)
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, u32>> {
        // The map holds counts only: one a panicking holder left is still usable.
        self.resume_failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one more failed resumption of `transfer_id`; returns the count.
    fn count_failure(&self, transfer_id: Uuid) -> u32 {
        let mut failures = self.failures();
        if !failures.contains_key(&transfer_id) && failures.len() >= RESUME_FAILURES_TRACKED_MAX {
            return 1;
        }
        let attempts = failures.entry(transfer_id).or_insert(0);
        *attempts += 1;
        *attempts
    }

    fn quarantined_ids(&self) -> HashSet<Uuid> {
        self.failures()
            .iter()
            .filter(|(_, attempts)| **attempts >= RESUME_ATTEMPTS_MAX)
            .map(|(transfer_id, _)| *transfer_id)
            .collect()
    }

    /// [`Self::drive`] for a request whose transfer's intent is recorded:
    /// a store failure leaves the transfer unfinished, not undone
    /// ([`ProcessError::Unfinished`]).
    async fn drive_recorded(
        &self,
        transfer_id: Uuid,
        intent: &TransferIntent,
        stream: Stream,
    ) -> Result<Ending, ProcessError> {
        self.drive(transfer_id, intent, stream)
            .await
            .map_err(|error| match error {
                ProcessError::Store(source) => ProcessError::Unfinished {
                    transfer_id,
                    source,
                },
                other => other,
            })
    }

    /// Takes the transfer from the state its journal shows to its end.
    async fn drive(
        &self,
        transfer_id: Uuid,
        intent: &TransferIntent,
        mut stream: Stream,
    ) -> Result<Ending, ProcessError> {
        for _ in 0..JOURNAL_ROUNDS_MAX {
            // The record, the step it reaches, and the log position of the
            // wallet event it says is stored (0 when none).
            let (next, step, log_position) = match progress(transfer_id, &stream.current)? {
                Progress::Finished(ending) => return Ok(ending),
                Progress::Initiated => match self
                    .apply_half(transfer_id, intent, Half::Sent, Step::Debit)
                    .await?
                {
                    Ok(debit) => (JournalRecord::Debited, Step::DebitRecorded, debit.position),
                    Err(refusal) => (
                        JournalRecord::Finished(Ending::Failed { refusal }),
                        Step::Finish,
                        0,
                    ),
                },
                Progress::Debited => match self
                    .apply_half(transfer_id, intent, Half::Received, Step::Credit)
                    .await?
                {
                    Ok(credit) => (
                        JournalRecord::Credited,
                        Step::CreditRecorded,
                        credit.position,
                    ),
                    Err(refusal) => {
                        let reversal = self.reverse(transfer_id, intent).await?;
                        (
                            JournalRecord::Compensated { refusal },
                            Step::ReversalRecorded,
                            reversal.position,
                        )
                    }
                },
                Progress::Credited => {
                    let body = self.render(transfer_id, intent).await?;
                    let status = self.reply.status;
                    (
                        JournalRecord::Finished(Ending::Completed { status, body }),
                        Step::Finish,
                        0,
                    )
                }
                Progress::Compensated(refusal) => (
                    JournalRecord::Finished(Ending::Failed { refusal }),
                    Step::Finish,
                    0,
                ),
            };
            match self
                .append_record(transfer_id, stream.expected(), &next, log_position)
                .await
            {
                Ok(()) => {
                    stream = stream.with(next);
                    self.reached(transfer_id, step)?;
                }
                // Another runner of this transfer recorded a step: go on from it.
                Err(JournalError::Conflict { .. }) => {
                    stream = self.read_stream(transfer_id).await?;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(ProcessError::Corrupt {
            transfer_id,
            reason: format!("no end after {JOURNAL_ROUNDS_MAX} journal appends"),
        })
    }

    /// Appends `half` (the debit or the credit) unless it is stored; a half
    /// the payer's or payee's rules refuse is returned, not an error.
    async fn apply_half(
        &self,
        transfer_id: Uuid,
        intent: &TransferIntent,
        half: Half,
        step: Step,
    ) -> Result<Result<Stored, DomainError>, ProcessError> {
        let applied = self
            .ensure(transfer_id, half.command(transfer_id, intent))
            .await?;
        if applied.is_ok() {
            self.reached(transfer_id, step)?;
        }
        Ok(applied)
    }

    async fn reverse(
        &self,
        transfer_id: Uuid,
        intent: &TransferIntent,
    ) -> Result<Stored, ProcessError> {
        let reversal = self
            .ensure(transfer_id, Half::Reversed.command(transfer_id, intent))
            .await?
            .map_err(|refusal| ProcessError::ReversalRefused {
                transfer_id,
                refusal,
            })?;
        self.reached(transfer_id, Step::Reversal)?;
        Ok(reversal)
    }

    /// The reply of a completed transfer, from the stored halves.
    async fn render(
        &self,
        transfer_id: Uuid,
        intent: &TransferIntent,
    ) -> Result<String, ProcessError> {
        let from = self.stored(transfer_id, intent, Half::Sent).await?;
        let to = self.stored(transfer_id, intent, Half::Received).await?;
        if let Some(hold_id) = &intent.hold_id {
            let hold = self.captured_hold(transfer_id, intent, hold_id).await?;
            return Ok((self.reply.render_capture)(&hold)?);
        }
        Ok((self.reply.render)(transfer_id, &from, &to)?)
    }

    /// The hold as the capture of `intent` left it: the payer's pending hold
    /// right before the capture with the capture applied, as the atomic path
    /// renders it. Read from the newest snapshot on; a capture older than the
    /// snapshot (a reply rendered long after) is found by its id and the
    /// stream folded up to it.
    async fn captured_hold(
        &self,
        transfer_id: Uuid,
        intent: &TransferIntent,
        hold_id: &HoldId,
    ) -> Result<Hold, ProcessError> {
        let captured_id = Half::Sent.command(transfer_id, intent).event_id;
        let tail = read_tail(&*self.store, &intent.from_wallet_id).await?;
        let mut before = tail.base;
        let mut hold = None;
        for recorded in &tail.events {
            if recorded.event.event_id == captured_id {
                hold = hold_after(&before, std::slice::from_ref(&recorded.event), hold_id);
                break;
            }
            before = evolve_checked(&intent.from_wallet_id, before, recorded)?;
        }
        if hold.is_none() {
            let wallet_id = &intent.from_wallet_id;
            if let Some(version) = self.store.version_of_event(wallet_id, captured_id).await? {
                let stream = self.store.read_stream_until(wallet_id, 0, version).await?;
                let events = stream.iter().map(|recorded| &recorded.event);
                hold = holds_in(events, intent.initiated_at).remove(hold_id);
            }
        }
        hold.ok_or_else(|| ProcessError::Corrupt {
            transfer_id,
            reason: format!(
                "wallet {} lacks the capture of hold {hold_id}",
                intent.from_wallet_id
            ),
        })
    }

    /// The wallet right after `half`, which the journal says is stored.
    async fn stored(
        &self,
        transfer_id: Uuid,
        intent: &TransferIntent,
        half: Half,
    ) -> Result<Wallet, ProcessError> {
        let command = half.command(transfer_id, intent);
        let wallet_id = &command.wallet_id;
        match self.lookup(wallet_id, command.event_id).await? {
            Lookup::Found(stored) => Ok(stored.wallet),
            Lookup::Missing(_) => Err(ProcessError::Corrupt {
                transfer_id,
                reason: format!(
                    "the journal says {half:?} is stored, but wallet {wallet_id} lacks it"
                ),
            }),
        }
    }

    /// Stores the command's event unless its wallet already has it; the
    /// wallet after it, or the domain's refusal.
    async fn ensure(
        &self,
        transfer_id: Uuid,
        mut command: Command,
    ) -> Result<Result<Stored, DomainError>, ProcessError> {
        // A step is stamped when it is appended, not when its transfer was
        // asked for: a step resumed later must not rewrite what the wallet's
        // history already showed as of the moments in between. To the
        // millisecond, as every time the server stamps: a time read off an
        // answer and given back as `?at=` then names this event.
        command.issued_at = command.issued_at.max(wallet_domain::issued_at(Utc::now()));
        for _ in 0..STEP_CONFLICT_ATTEMPTS_MAX {
            let state = match self.lookup(&command.wallet_id, command.event_id).await? {
                Lookup::Found(stored) => return Ok(Ok(stored)),
                Lookup::Missing(state) => state,
            };
            let events = match decide(&state, &command) {
                Ok(events) => events,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let expected_version = state.version();
            let after = events.iter().fold(state, evolve);
            let request = AppendRequest {
                streams: vec![StreamAppend {
                    wallet_id: command.wallet_id.clone(),
                    expected_version,
                    expected_last_event_id: None,
                    events,
                }],
                idempotent_response: None,
            };
            match self.store.append(request).await {
                Ok(outcome) => {
                    return match after {
                        WalletState::Open(wallet) => Ok(Ok(Stored {
                            wallet,
                            position: outcome.last_position,
                        })),
                        WalletState::Absent => {
                            Ok(Err(DomainError::WalletNotFound(command.wallet_id.clone())))
                        }
                    }
                }
                // Someone wrote the wallet meanwhile (maybe this very event): look again.
                Err(
                    AppendError::VersionConflict { .. } | AppendError::LastEventMismatch { .. },
                ) => continue,
                Err(AppendError::Store(error)) => return Err(error.into()),
                Err(AppendError::IdempotencyKeyTaken(key)) => {
                    return Err(ProcessError::Corrupt {
                        transfer_id,
                        reason: format!("a step without a key was refused for key {key:?}"),
                    })
                }
                Err(AppendError::HoldIdTaken(hold_id)) => {
                    return Err(ProcessError::Corrupt {
                        transfer_id,
                        reason: format!(
                            "a step that places no hold was refused for hold {hold_id}"
                        ),
                    })
                }
            }
        }
        Err(ProcessError::Contended {
            transfer_id,
            wallet_id: command.wallet_id,
        })
    }

    /// Whether the stream of `wallet_id` holds `event_id`: the wallet right
    /// after it if so, else the wallet now. Reads from the newest snapshot on;
    /// an event older than the snapshot (a step replayed long after) is found
    /// by its id and the stream replayed up to it.
    async fn lookup(&self, wallet_id: &WalletId, event_id: Uuid) -> Result<Lookup, ProcessError> {
        let tail = read_tail(&*self.store, wallet_id).await?;
        let snapshot_to_save = tail.snapshot_to_save();
        let from_snapshot = tail.base_last_event_id.is_some();
        let mut state = tail.base;
        let mut last_event_id = tail.base_last_event_id;
        for recorded in &tail.events {
            state = evolve_checked(wallet_id, state, recorded)?;
            last_event_id = Some(recorded.event.event_id);
            if recorded.event.event_id == event_id {
                if let WalletState::Open(wallet) = state {
                    let position = recorded.position;
                    return Ok(Lookup::Found(Stored { wallet, position }));
                }
            }
        }
        if let (Some(replace), WalletState::Open(wallet), Some(last_event_id)) =
            (snapshot_to_save, &state, last_event_id)
        {
            save_snapshot_of(&*self.store, wallet, last_event_id, replace).await;
        }
        if from_snapshot {
            if let Some(version) = self.store.version_of_event(wallet_id, event_id).await? {
                let stream = self.store.read_stream_until(wallet_id, 0, version).await?;
                let replayed = stream
                    .iter()
                    .try_fold(WalletState::Absent, |state, recorded| {
                        evolve_checked(wallet_id, state, recorded)
                    })?;
                if let (WalletState::Open(wallet), Some(found)) = (replayed, stream.last()) {
                    let position = found.position;
                    return Ok(Lookup::Found(Stored { wallet, position }));
                }
            }
        }
        Ok(Lookup::Missing(state))
    }

    /// The intent to record, or the refusal the domain gives now to either
    /// half, before anything is recorded: the same decision the atomic path
    /// makes, both halves at once. Under the wallet lock it is also the
    /// refusal the steps meet.
    async fn intent_before_start(
        &self,
        transfer_id: Uuid,
        order: Order<'_>,
    ) -> Result<Result<TransferIntent, DomainError>, ProcessError> {
        match order {
            Order::Transfer(intent) => {
                let sent = Half::Sent.command(transfer_id, intent);
                let received = Half::Received.command(transfer_id, intent);
                let payer = self.state_for(&sent).await?;
                let payee = self.state_for(&received).await?;
                Ok(decide_transfer(&payer, &sent, &payee, &received).map(|_| intent.clone()))
            }
            Order::Capture(request) => self.capture_intent(transfer_id, request).await,
        }
    }

    /// The intent of a capture: the amount [`decide_capture`] takes when it
    /// allows the capture on both wallets as they stand now.
    async fn capture_intent(
        &self,
        transfer_id: Uuid,
        request: &CaptureRequest,
    ) -> Result<Result<TransferIntent, DomainError>, ProcessError> {
        let capture = &request.capture;
        let CommandKind::CaptureHold {
            hold_id,
            to_wallet_id: Some(to_wallet_id),
            description,
            ..
        } = &capture.kind
        else {
            return Err(ProcessError::NotACapture(transfer_id));
        };
        let sent = Command {
            event_id: Half::Sent.event_id(transfer_id),
            ..capture.clone()
        };
        let payer = self.state_for(&sent).await?;
        let payee = self.state_now(to_wallet_id).await?;
        let (captured, _) = match decide_capture(&payer, &sent, &payee) {
            Ok(decided) => decided,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let amount = captured.iter().find_map(|event| match &event.kind {
            EventKind::HoldCaptured { amount, .. } => Some(*amount),
            _ => None,
        });
        let Some(amount) = amount else {
            return Err(ProcessError::NotACapture(transfer_id));
        };
        Ok(Ok(TransferIntent {
            from_wallet_id: capture.wallet_id.clone(),
            to_wallet_id: to_wallet_id.clone(),
            amount,
            description: description.clone(),
            metadata: capture.metadata.clone(),
            request_fingerprint: request.request_fingerprint.clone(),
            initiated_at: capture.issued_at,
            hold_id: Some(hold_id.clone()),
        }))
    }

    /// The wallet as its stream stands now.
    async fn state_now(&self, wallet_id: &WalletId) -> Result<WalletState, ProcessError> {
        let tail = read_tail(&*self.store, wallet_id).await?;
        Ok(tail.events.iter().try_fold(tail.base, |state, recorded| {
            evolve_checked(wallet_id, state, recorded)
        })?)
    }

    /// The wallet of `command` as the decision sees it: as it stood after the
    /// command's event if the stream has it, otherwise now.
    async fn state_for(&self, command: &Command) -> Result<WalletState, ProcessError> {
        Ok(
            match self.lookup(&command.wallet_id, command.event_id).await? {
                Lookup::Found(stored) => WalletState::Open(stored.wallet),
                Lookup::Missing(state) => state,
            },
        )
    }

    fn reached(&self, transfer_id: Uuid, step: Step) -> Result<(), ProcessError> {
        tracing::debug!(%transfer_id, ?step, "transfer step stored");
        #[cfg(test)]
        if self.crash_after == Some(step) {
            return Err(ProcessError::Crashed(step));
        }
        Ok(())
    }
}

/// The wallet events of a transfer, each with an id derived from the transfer id.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Half {
    Sent,
    Received,
    Reversed,
}

impl Half {
    fn event_id(self, transfer_id: Uuid) -> Uuid {
        let name: &[u8] = match self {
            Half::Sent => b"sent",
            Half::Received => b"received",
            Half::Reversed => b"reversed",
        };
        Uuid::new_v5(&transfer_id, name)
    }

    fn wallet_id(self, intent: &TransferIntent) -> &WalletId {
        match self {
            Half::Sent | Half::Reversed => &intent.from_wallet_id,
            Half::Received => &intent.to_wallet_id,
        }
    }

    /// The command of this half: its event id derived from the transfer,
    /// its time the intent's (a step is stamped when appended: see
    /// `ensure`), and, after the debit, caused by the debit. For
    /// a capture, the payer's `CaptureHold` of the intent's amount, and the
    /// payee's half and the reversal the domain derives from it.
    pub(crate) fn command(self, transfer_id: Uuid, intent: &TransferIntent) -> Command {
        if let Some(hold_id) = &intent.hold_id {
            return self.capture_command(transfer_id, intent, hold_id);
        }
        let kind = match self {
            Half::Sent => CommandKind::TransferOut {
                transfer_id,
                to_wallet_id: intent.to_wallet_id.clone(),
                amount: intent.amount,
                description: intent.description.clone(),
            },
            Half::Received => CommandKind::TransferIn {
                transfer_id,
                from_wallet_id: intent.from_wallet_id.clone(),
                amount: intent.amount,
                description: intent.description.clone(),
            },
            Half::Reversed => CommandKind::TransferReverse {
                transfer_id,
                to_wallet_id: intent.to_wallet_id.clone(),
                amount: intent.amount,
            },
        };
        let metadata = match self {
            Half::Sent => intent.metadata.clone(),
            Half::Received | Half::Reversed => EventMetadata {
                causation_id: Some(Half::Sent.event_id(transfer_id).to_string()),
                ..intent.metadata.clone()
            },
        };
        Command {
            wallet_id: self.wallet_id(intent).clone(),
            kind,
            event_id: self.event_id(transfer_id),
            issued_at: intent.initiated_at,
            metadata,
        }
    }
}

impl Half {
    fn capture_command(
        self,
        transfer_id: Uuid,
        intent: &TransferIntent,
        hold_id: &HoldId,
    ) -> Command {
        let capture = Command {
            wallet_id: intent.from_wallet_id.clone(),
            kind: CommandKind::CaptureHold {
                hold_id: hold_id.clone(),
                amount: Some(intent.amount),
                to_wallet_id: Some(intent.to_wallet_id.clone()),
                description: intent.description.clone(),
            },
            event_id: Half::Sent.event_id(transfer_id),
            issued_at: intent.initiated_at,
            metadata: intent.metadata.clone(),
        };
        let Some(halves) = capture_halves(&capture) else {
            unreachable!("a capture of an amount to another wallet has halves");
        };
        match self {
            Half::Sent => capture,
            Half::Received => halves.received,
            Half::Reversed => halves.reversed,
        }
    }
}

/// A journal stream as the process reads it: the claims of its key that
/// were released, then the records that count now (a transfer's, a claim,
/// or none: the key is free). A stream no key names has no claims.
struct Stream {
    /// Records of the released claims (each a claim and its release).
    released: usize,
    /// The records after the last released claim.
    current: Vec<JournalRecord>,
}

impl Stream {
    /// `records` split after their last released claim.
    fn of(mut records: Vec<JournalRecord>) -> Self {
        let mut released = 0;
        while let [JournalRecord::KeyClaimed { .. }, JournalRecord::KeyReleased, ..] =
            &records[released..]
        {
            released += 2;
        }
        let current = records.split_off(released);
        Self { released, current }
    }

    /// The stream with `record` appended.
    fn with(mut self, record: JournalRecord) -> Self {
        self.current.push(record);
        self
    }

    /// The number of records the next append expects before it.
    fn expected(&self) -> u64 {
        (self.released + self.current.len()) as u64
    }
}

/// Who holds an idempotency key, by the records of the journal's stream it
/// names after its released claims ([`Stream::current`]), for a request
/// fingerprinted `request_fingerprint`: the one decision of
/// [`TransferProcess::claim_key`], [`TransferProcess::key_held_by_another`],
/// [`TransferProcess::release_key`] and a transfer's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyHolder {
    /// No record, or every claim released: the key is free.
    Nobody,
    /// This request's own claim (a retry of it).
    This,
    /// A transfer recorded under it, or another request's claim.
    Another,
    /// A claim made before `expire_before`, whoever's, that may be released
    /// (its stream holds fewer than [`KEY_RELEASES_MAX`] released claims):
    /// the key is free once it is.
    Expired,
}

impl TransferProcess {
    fn key_holder(&self, stream: &Stream, request_fingerprint: Option<&str>) -> KeyHolder {
        key_holder(stream, request_fingerprint, self.claims_expire_before())
    }
}

fn key_holder(
    stream: &Stream,
    request_fingerprint: Option<&str>,
    expire_before: Option<DateTime<Utc>>,
) -> KeyHolder {
    match stream.current.first() {
        None => KeyHolder::Nobody,
        Some(JournalRecord::KeyClaimed {
            claimed_at: Some(claimed_at),
            ..
        }) if expire_before.is_some_and(|before| *claimed_at < before)
            && stream.released / 2 < KEY_RELEASES_MAX =>
        {
            KeyHolder::Expired
        }
        Some(JournalRecord::KeyClaimed {
            request_fingerprint: claimed,
            ..
        }) if Some(claimed.as_str()) == request_fingerprint => KeyHolder::This,
        Some(_) => KeyHolder::Another,
    }
}

fn intent_of(transfer_id: Uuid, records: &[JournalRecord]) -> Result<TransferIntent, ProcessError> {
    match records.first() {
        Some(JournalRecord::Initiated(intent)) => Ok(intent.clone()),
        _ => Err(ProcessError::Corrupt {
            transfer_id,
            reason: "the journal does not begin with the intent".into(),
        }),
    }
}

/// Folds the journal; a record out of order is corruption.
fn progress(transfer_id: Uuid, records: &[JournalRecord]) -> Result<Progress, ProcessError> {
    let mut progress = None;
    for record in records {
        progress = Some(match (progress, record) {
            (None, JournalRecord::Initiated(_)) => Progress::Initiated,
            (Some(Progress::Initiated), JournalRecord::Debited) => Progress::Debited,
            (Some(Progress::Debited), JournalRecord::Credited) => Progress::Credited,
            (Some(Progress::Debited), JournalRecord::Compensated { refusal }) => {
                Progress::Compensated(refusal.clone())
            }
            (
                Some(Progress::Initiated | Progress::Credited | Progress::Compensated(_)),
                JournalRecord::Finished(ending),
            ) => Progress::Finished(ending.clone()),
            (before, record) => {
                return Err(ProcessError::Corrupt {
                    transfer_id,
                    reason: format!("record {record:?} cannot follow {before:?}"),
                })
            }
        });
    }
    progress.ok_or_else(|| ProcessError::Corrupt {
        transfer_id,
        reason: "no records".into(),
    })
}
