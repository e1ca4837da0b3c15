//! Command handling: idempotency, lock, load, decide, append, retry.
//!
//! A decision is only ever made on a state whose last event is the store's:
//! a command decided on a cached wallet appends with the id of that wallet's
//! last event besides its version, and the store refuses it if its stream
//! holds another event there; a refusal (404, 409, 400) is never answered
//! from the cache, but decided again on the stream as the store holds it.
//! Every stream read is checked event by event ([`continues`]), and so is
//! every append, so no stored balance that disagrees with its own stream is
//! ever decided on.
//!
//! A transfer is one atomic append to both wallet streams when the store can
//! do that; otherwise (KurrentDB, or `TRANSFERS=process`) it runs through the
//! [`TransferProcess`] under the same wallet lock, and so does the capture of
//! a hold to another wallet.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use event_store::{
    evolve_checked, fold_stream_as_of, read_tail, save_snapshot_of, snapshot_due,
    snapshot_state_as_of, AppendError, AppendRequest, EventStore, IdempotentResponse,
    RecordedEvent, SnapshotReplace, StoreError, StreamAppend, AS_OF_READ_PAGE_EVENTS,
};
use tokio::sync::SemaphorePermit;
use transfer_process::{
    transfer_id_for_key, CaptureRequest, Ending, ProcessError, Resumption, TransferIntent,
    TransferJournal, TransferProcess, TransferReply, TransferRequest,
};
use uuid::Uuid;
use wallet_domain::{
    continues, decide, decide_transfer, evolve, AsOf, Command, CommandKind, DomainError,
    EventMetadata, Wallet, WalletEvent, WalletId, WalletState,
};
use wallet_lock::{LockError, LockLease, WalletLock};

use super::admission::{Admission, Overloaded};
use super::cache::{CachedWallet, WalletCache};
use super::holds::capture_order;
use super::operation::{OperationOutcome, WalletOperation};
use super::recent::RecentEvents;
use crate::metrics::Metrics;
use observability::{FailureStreak, Failures};

/// Attempts of one command when its expected version turns out stale.
pub const CONFLICT_ATTEMPTS_MAX: usize = 16;

#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub key: String,
    pub fingerprint: String,
}

/// A stored idempotency key as its caller sent it. An authenticated caller's
/// key is stored as `<sub> <key>` (`http::auth::scoped_idempotency_key`) and a
/// key holds no space, so the caller's part is what follows the last space.
pub fn idempotency_key_as_sent(stored: &str) -> &str {
    stored.rsplit_once(' ').map_or(stored, |(_, key)| key)
}

#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The `sub` of the caller, recorded in every event (`None` when unauthenticated).
    pub principal: Option<String>,
    pub correlation_id: String,
    pub request_id: Uuid,
    pub idempotency: Option<IdempotencyClaim>,
}

/// What the caller answers on success: the service stores exactly this for
/// idempotent replays, in the same transaction as the events.
pub struct ReplyFormat {
    pub status: u16,
    pub render: fn(&OperationOutcome) -> Result<String, serde_json::Error>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// True when this is the stored answer to an earlier request with the same key.
    pub replayed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(
        "Concurrency conflict on wallet {0}: it changed too often while this request ran; retry it"
    )]
    ConcurrencyConflict(String),
    /// Holds the key as stored; the message quotes it as its caller sent it.
    #[error(
        "Idempotency-Key {:?} was already used for a different request",
        idempotency_key_as_sent(.0)
    )]
    IdempotencyKeyReused(String),
    #[error("wallet {0} is busy; retry the request")]
    LockTimedOut(WalletId),
    #[error(transparent)]
    Overloaded(#[from] Overloaded),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not encode the response: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error(transparent)]
    Transfer(ProcessError),
    #[error("the transfer task stopped before it answered: {0}")]
    TransferAborted(String),
}

impl ServiceError {
    /// True when the event store failed the request, not the rules, the
    /// caller or another request: an operating fault `/health` reports as
    /// the event store's writes. The transfer journal's failures are the
    /// transfer process's to report (`transfers.writes`): a command that
    /// passes beside a failing journal must not hide them (tester h138 F3).
    fn is_store_failure(&self) -> bool {
        match self {
            ServiceError::Store(_) | ServiceError::TransferAborted(_) => true,
            ServiceError::Transfer(error) => matches!(
                error,
                ProcessError::Store(_) | ProcessError::Unfinished { .. }
            ),
            ServiceError::Domain(_)
            | ServiceError::ConcurrencyConflict(_)
            | ServiceError::IdempotencyKeyReused(_)
            | ServiceError::LockTimedOut(_)
            | ServiceError::Overloaded(_)
            | ServiceError::Encoding(_) => false,
        }
    }

    /// True when the request was refused, storing nothing: by the rules, by
    /// a wallet that changed too often, or by its key taken meanwhile. Its
    /// key is then free again (see [`WalletService::release_key`]).
    fn is_refusal(&self) -> bool {
        matches!(
            self,
            ServiceError::Domain(_)
                | ServiceError::ConcurrencyConflict(_)
                | ServiceError::IdempotencyKeyReused(_)
        )
    }
}

impl From<ProcessError> for ServiceError {
    fn from(error: ProcessError) -> Self {
        match error {
            ProcessError::KeyReused(key) => ServiceError::IdempotencyKeyReused(key),
            ProcessError::Contended { wallet_id, .. } => {
                ServiceError::ConcurrencyConflict(wallet_id.to_string())
            }
            ProcessError::Store(error) => ServiceError::Store(error),
            other => ServiceError::Transfer(other),
        }
    }
}

pub struct WalletService {
    store: Arc<dyn EventStore>,
    lock: Arc<dyn WalletLock>,
    cache: WalletCache,
    metrics: Metrics,
    /// Present when transfers run as a process rather than one atomic append.
    transfers: Option<Arc<TransferProcess>>,
    /// Whether the last lock request found the lock service away: the log
    /// says so when it goes and when it comes back, not once per command.
    lock_away: AtomicBool,
    /// How the commands' writes have been ending, for `/health`.
    writes: FailureStreak,
    /// The turns of the commands: [`super::COMMANDS_IN_FLIGHT_MAX`] at a time.
    admission: Admission,
}

fn now() -> DateTime<Utc> {
    wallet_domain::issued_at(Utc::now())
}

impl WalletService {
    pub fn new(store: Arc<dyn EventStore>, lock: Arc<dyn WalletLock>, metrics: Metrics) -> Self {
        Self {
            store,
            lock,
            cache: WalletCache::default(),
            metrics,
            transfers: None,
            lock_away: AtomicBool::new(false),
            writes: FailureStreak::default(),
            admission: Admission::default(),
        }
    }

    /// The service with a wallet cache of at most `mib` MiB instead of
    /// [`super::WALLET_CACHE_MIB_DEFAULT`].
    pub fn with_cache_mib(mut self, mib: u32) -> Self {
        self.cache = WalletCache::of_mib(mib);
        self
    }

    /// Runs transfers through the transfer process, recorded in `journal`
    /// and answered with `reply`; the journal's claims of idempotency keys
    /// expire once `claims_expire_after` old, when given
    /// ([`TransferProcess::with_claims_expiring_after`]).
    pub fn with_transfer_process(
        mut self,
        journal: Arc<dyn TransferJournal>,
        reply: TransferReply,
        claims_expire_after: Option<chrono::Duration>,
    ) -> Self {
        let process = TransferProcess::new(Arc::clone(&self.store), journal, reply);
        self.transfers = Some(Arc::new(match claims_expire_after {
            Some(after) => process.with_claims_expiring_after(after),
            None => process,
        }));
        self
    }

    /// Finishes the transfers a crash or a failed request left unfinished
    /// (none without the process), those initiated at or before
    /// `initiated_before`, each on its own, and forgets the cached wallets
    /// they touched.
    pub async fn resume_unfinished_transfers(
        &self,
        initiated_before: DateTime<Utc>,
    ) -> Result<Resumption, ProcessError> {
        let Some(process) = &self.transfers else {
            return Ok(Resumption::default());
        };
        let resumption = process.resume_unfinished(initiated_before).await?;
        for wallet_id in &resumption.touched {
            self.cache.forget(wallet_id);
        }
        self.metrics
            .transfers_quarantined
            .set(i64::try_from(resumption.quarantined).unwrap_or(i64::MAX));
        Ok(resumption)
    }

    /// Transfers the sweep has set aside; `None` without the transfer process.
    pub fn quarantined_transfers(&self) -> Option<usize> {
        self.transfers.as_ref().map(|process| process.quarantined())
    }

    /// The transfer journal's writes that failed since the last that passed;
    /// `None` without the transfer process or while they pass.
    pub fn transfer_journal_write_failures(&self) -> Option<observability::Failures> {
        self.transfers.as_ref()?.journal_write_failures()
    }

    /// The transfer sweep's resumptions that failed since the last that
    /// passed; `None` without the transfer process or while they pass.
    pub fn transfer_resumption_failures(&self) -> Option<observability::Failures> {
        self.transfers.as_ref()?.resumption_failures()
    }

    /// The transfer journal's damage, once found; `None` without the
    /// transfer process or while the journal is whole.
    pub fn transfer_journal_damage(&self) -> Option<String> {
        self.transfers.as_ref()?.journal_damage()
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The wallet lock the commands take (for `/health`).
    pub fn lock(&self) -> &Arc<dyn WalletLock> {
        &self.lock
    }

    /// The wallet with every stored event applied, including other processes'.
    pub async fn current(&self, wallet_id: &WalletId) -> Result<Option<Wallet>, StoreError> {
        Ok(self.read_through(wallet_id).await?.state.wallet().cloned())
    }

    /// [`Self::current`] with the newest of its stream's events this process
    /// holds (the last at the wallet's version; as few as none).
    pub async fn current_with_recent(
        &self,
        wallet_id: &WalletId,
    ) -> Result<Option<(Wallet, RecentEvents)>, StoreError> {
        let loaded = self.read_through(wallet_id).await?;
        Ok(match loaded.state {
            WalletState::Open(wallet) => Some((wallet, loaded.recent)),
            WalletState::Absent => None,
        })
    }

    /// Drops every cached wallet when the store's head position is lower than
    /// one this process has seen (the store lost events); returns true when it
    /// did. Called periodically while serving.
    pub async fn check_store_head(&self) -> Result<bool, StoreError> {
        let seen_before = self.cache.position_seen();
        let head = self.store.head_position().await?;
        let regressed = self.cache.observe_head(seen_before, head);
        if regressed {
            self.metrics.store_regressions.inc();
            tracing::error!(
                head,
                "the event store's head went backwards: it lost events; the wallet cache is dropped"
            );
        }
        Ok(regressed)
    }

    /// The wallet as it stood at `as_of`; `None` if it did not exist yet.
    /// Folded from the stored snapshot nearest before the moment
    /// ([`snapshot_state_as_of`]), or from the first event when there is
    /// none, up to the moment, [`AS_OF_READ_PAGE_EVENTS`] events a read at
    /// most: what a read takes, in memory and in events read, does not grow
    /// with the stream.
    pub async fn as_of(
        &self,
        wallet_id: &WalletId,
        as_of: AsOf,
    ) -> Result<Option<Wallet>, StoreError> {
        let bound = match as_of {
            AsOf::Version(version) => version,
            AsOf::Time(_) => u64::MAX,
        };
        let base = snapshot_state_as_of(&*self.store, wallet_id, as_of).await?;
        let state = fold_stream_as_of(
            &*self.store,
            wallet_id,
            base,
            bound,
            as_of,
            AS_OF_READ_PAGE_EVENTS,
        )
        .await?;
        Ok(match state {
            WalletState::Open(wallet) => Some(wallet),
            WalletState::Absent => None,
        })
    }

    /// With the transfer process, the refusal of closing a wallet that
    /// unfinished transfers take money out of (see
    /// [`TransferProcess::unfinished_from`]); `None` for any other operation.
    async fn transfers_underway(
        &self,
        operation: &WalletOperation,
    ) -> Result<Option<DomainError>, ServiceError> {
        let (Some(process), WalletOperation::Close { wallet_id }) = (&self.transfers, operation)
        else {
            return Ok(None);
        };
        let count = process.unfinished_from(wallet_id).await?;
        Ok(
            (count > 0).then(|| DomainError::WalletHasTransfersUnderway {
                wallet_id: wallet_id.clone(),
                count,
            }),
        )
    }

    /// Writes that failed in the event store since the last that passed
    /// (see [`FailureStreak`]); `None` when they pass, or none failed
    /// within [`observability::FAILURE_REPORT_MS`].
    pub fn write_failures(&self) -> Option<Failures> {
        self.writes.failures()
    }

    /// Decides `operation` and appends what it decided (a transfer through
    /// the transfer process when there is one), answering as `format` says;
    /// how the write ended is kept for `/health`.
    pub async fn execute(
        &self,
        operation: WalletOperation,
        context: RequestContext,
        format: ReplyFormat,
    ) -> Result<Reply, ServiceError> {
        let executed = self.execute_unobserved(operation, context, format).await;
        match &executed {
            Ok(reply) if !reply.replayed => {
                if let Some(over) = self.writes.passed() {
                    tracing::info!(
                        failures = over.failures,
                        since = %over.since,
                        "event store writes pass again"
                    );
                }
            }
            Err(error) if error.is_store_failure() => self.writes.failed(error),
            _ => {}
        }
        executed
    }

    async fn execute_unobserved(
        &self,
        operation: WalletOperation,
        context: RequestContext,
        format: ReplyFormat,
    ) -> Result<Reply, ServiceError> {
        // A repeated idempotency key is found where it matters, without a read
        // on the common path: its append fails on the stored key, or, when the
        // first request changed the wallet, the rules refuse the repeat.
        let wallet_ids = operation.wallet_ids();
        let (lease, _turn) = self.lease_and_turn(&wallet_ids).await?;
        if let Some(process) = &self.transfers {
            let order = match transfer_intent(&operation, &context) {
                Some(intent) => Some(ProcessOrder::Transfer(intent)),
                None => capture_order(&operation, &context, now()).map(ProcessOrder::Capture),
            };
            if let Some(order) = order {
                let reply = self
                    .transfer_by_process(process, order, &context, lease)
                    .await;
                for wallet_id in &wallet_ids {
                    self.cache.forget(wallet_id);
                }
                return reply;
            }
        }
        self.catch_up_with_lease(&lease, &wallet_ids).await?;
        // With the transfer process, the key is claimed in its journal before
        // the events are appended (once, whatever the attempts): a transfer
        // racing this request with the same key is arbitrated there. A
        // request refused after its claim stored nothing: its key is freed.
        let mut key_claimed = false;
        let executed = self
            .decide_and_append(&operation, &context, &format, &lease, &mut key_claimed)
            .await;
        match executed {
            Err(refusal) if key_claimed && refusal.is_refusal() => {
                self.release_key(&context).await;
                Err(refusal)
            }
            executed => executed,
        }
    }

    /// Reads on from the cache, before deciding, each wallet that the lock
    /// says another replica wrote past the cached version (see
    /// [`LockLease::last_written`]): the decision is then taken on the
    /// store's state, and the append does not fail on the expected version.
    /// A wallet not cached is read from the store by the decision anyway.
    async fn catch_up_with_lease(
        &self,
        lease: &LockLease,
        wallet_ids: &[&WalletId],
    ) -> Result<(), StoreError> {
        for wallet_id in wallet_ids {
            let behind = lease.last_written(wallet_id).is_some_and(|written| {
                self.cache
                    .version_of(wallet_id)
                    .is_some_and(|cached| cached < written)
            });
            if behind {
                self.metrics.caught_up_by_lock.inc();
                self.read_through(wallet_id).await?;
            }
        }
        Ok(())
    }

    /// Decides `operation` and appends what it decided, again on a
    /// conflict, up to [`CONFLICT_ATTEMPTS_MAX`] times; records on `lease`
    /// the versions it left the wallets at; sets `key_claimed` once its key
    /// is claimed in the transfer journal.
    async fn decide_and_append(
        &self,
        operation: &WalletOperation,
        context: &RequestContext,
        format: &ReplyFormat,
        lease: &LockLease,
        key_claimed: &mut bool,
    ) -> Result<Reply, ServiceError> {
        let wallet_ids = operation.wallet_ids();
        for _ in 0..CONFLICT_ATTEMPTS_MAX {
            let decided = match self.decide(operation, context, Reads::Cached).await {
                // Never refuse, nor answer "nothing to change", on the cache:
                // decide again on the store's state.
                Err(ServiceError::Domain(_)) => self.decide(operation, context, Reads::Store).await,
                Ok((streams, _)) if changes_nothing(&streams) => {
                    self.decide(operation, context, Reads::Store).await
                }
                decided => decided,
            };
            let (streams, outcome) = match decided {
                Ok(decided) => decided,
                Err(refusal @ ServiceError::Domain(_)) => {
                    return self.replay_or(refusal, context).await
                }
                Err(error) => return Err(error),
            };
            if changes_nothing(&streams) {
                // Only a request without an idempotency key decides nothing
                // (see `decide`): no answer to keep.
                debug_assert!(context.idempotency.is_none());
                return Ok(Reply {
                    status: format.status,
                    body: (format.render)(&outcome)?,
                    replayed: false,
                });
            }
            // Checked again on every attempt: a transfer recorded after the
            // last check and debited before this append moves the wallet's
            // version, so this append conflicts and the next attempt sees it.
            if let Some(refusal) = self.transfers_underway(operation).await? {
                return self.replay_or(refusal.into(), context).await;
            }
            if let (Some(process), Some(claim), false) =
                (&self.transfers, &context.idempotency, *key_claimed)
            {
                match process.claim_key(&claim.key, &claim.fingerprint).await {
                    Ok(()) => *key_claimed = true,
                    // The store may hold this very request's answer, from
                    // before the journal claimed keys (h102 F5).
                    Err(ProcessError::KeyReused(key)) => {
                        return self
                            .replay_or(ServiceError::IdempotencyKeyReused(key), context)
                            .await
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            let body = (format.render)(&outcome)?;
            let last_events = last_event_ids(&streams);
            let recent_events = appended_events(&streams);
            let snapshots = snapshots_due(&streams);
            let request = AppendRequest {
                streams,
                idempotent_response: context
                    .idempotency
                    .as_ref()
                    .map(|claim| IdempotentResponse {
                        key: claim.key.clone(),
                        request_fingerprint: claim.fingerprint.clone(),
                        status: format.status,
                        body: body.clone(),
                    }),
            };
            match self.store.append(request).await {
                Ok(stored) => {
                    self.cache.saw_position(stored.last_position);
                    for wallet in outcome.wallets() {
                        lease.wrote(&wallet.id, wallet.version);
                    }
                    self.save_snapshots(&outcome, &snapshots, &last_events)
                        .await;
                    self.remember_outcome(outcome, &last_events, &recent_events);
                    return Ok(Reply {
                        status: format.status,
                        body,
                        replayed: false,
                    });
                }
                Err(
                    AppendError::VersionConflict { wallet_id, .. }
                    | AppendError::LastEventMismatch { wallet_id, .. },
                ) => {
                    self.metrics.conflict_retries.inc();
                    self.cache.forget(&wallet_id);
                }
                Err(AppendError::IdempotencyKeyTaken(key)) => {
                    return self
                        .replay_or(ServiceError::IdempotencyKeyReused(key), context)
                        .await;
                }
                Err(AppendError::HoldIdTaken(hold_id)) => {
                    return self
                        .replay_or(DomainError::HoldAlreadyExists(hold_id).into(), context)
                        .await;
                }
                Err(AppendError::Store(error)) => {
                    // The outcome is unknown: read the truth next time.
                    for wallet_id in &wallet_ids {
                        self.cache.forget(wallet_id);
                    }
                    return Err(error.into());
                }
            }
        }
        let contended: Vec<&str> = wallet_ids.iter().map(|id| id.as_str()).collect();
        Err(ServiceError::ConcurrencyConflict(contended.join(", ")))
    }

    /// A transfer (or a capture to another wallet) as a process: the key's
    /// earlier answer from the store if a request of another kind used it,
    /// else the process's answer.
    async fn transfer_by_process(
        &self,
        process: &Arc<TransferProcess>,
        order: ProcessOrder,
        context: &RequestContext,
        lease: LockLease,
    ) -> Result<Reply, ServiceError> {
        let transfer_id = match &context.idempotency {
            Some(claim) => {
                if let Some(stored) = self.store.find_idempotent_response(&claim.key).await? {
                    return replay_stored(stored, claim);
                }
                transfer_id_for_key(&claim.key)
            }
            None => Uuid::now_v7(),
        };
        // A task of its own, holding the wallets' lease: a client that hangs
        // up (and so drops this future) does not stop a transfer halfway.
        let process = Arc::clone(process);
        let capture = match &order {
            ProcessOrder::Capture(capture) => Some(capture.clone()),
            ProcessOrder::Transfer(_) => None,
        };
        let request_fingerprint = context
            .idempotency
            .as_ref()
            .map(|claim| claim.fingerprint.clone());
        let running = tokio::spawn(async move {
            let _lease = lease;
            match order {
                ProcessOrder::Transfer(intent) => {
                    process
                        .run(TransferRequest {
                            transfer_id,
                            intent,
                        })
                        .await
                }
                ProcessOrder::Capture(capture) => {
                    process
                        .capture(CaptureRequest {
                            transfer_id,
                            capture,
                            request_fingerprint,
                        })
                        .await
                }
            }
        });
        let answer = running
            .await
            .map_err(|error| ServiceError::TransferAborted(error.to_string()))??;
        match answer.ending {
            Ending::Completed { status, body } => Ok(Reply {
                status,
                body,
                replayed: answer.replayed,
            }),
            Ending::Failed { refusal } => match capture {
                Some(capture) => Err(self.capture_refused(&capture, refusal).await),
                None => Err(refusal.into()),
            },
        }
    }

    /// The stored answer to an earlier request with this request's key, if
    /// there is one; otherwise `error`.
    async fn replay_or(
        &self,
        error: ServiceError,
        context: &RequestContext,
    ) -> Result<Reply, ServiceError> {
        let Some(claim) = &context.idempotency else {
            return Err(error);
        };
        match self.earlier_use(claim).await? {
            EarlierUse::Nobody => Err(error),
            EarlierUse::This(stored) => replay_stored(stored, claim),
            EarlierUse::Another => Err(ServiceError::IdempotencyKeyReused(claim.key.clone())),
        }
    }

    /// Refuses a command that cannot be decided, its wallet or hold being
    /// unknown to its caller (none such, or another owner's), when its
    /// `Idempotency-Key` was used already: a reused key is 422 whatever the
    /// target, as for a command the rules refuse ([`Self::replay_or`]). No
    /// kept answer can be this request's (a refusal keeps none, and a wallet
    /// or a hold, once there, stays), so any earlier use is another request's.
    ///
    /// # Errors
    /// [`ServiceError::IdempotencyKeyReused`] when the key was used;
    /// the store's or the journal's error when they cannot say.
    pub async fn refuse_reused_key(&self, context: &RequestContext) -> Result<(), ServiceError> {
        let Some(claim) = &context.idempotency else {
            return Ok(());
        };
        match self.earlier_use(claim).await? {
            EarlierUse::Nobody => Ok(()),
            EarlierUse::This(_) | EarlierUse::Another => {
                Err(ServiceError::IdempotencyKeyReused(claim.key.clone()))
            }
        }
    }

    /// Who used `claim`'s key before: the one place that reads it, for a
    /// refused command and for one that cannot be decided.
    async fn earlier_use(&self, claim: &IdempotencyClaim) -> Result<EarlierUse, ServiceError> {
        if let Some(stored) = self.store.find_idempotent_response(&claim.key).await? {
            return Ok(if stored.request_fingerprint == claim.fingerprint {
                EarlierUse::This(stored)
            } else {
                EarlierUse::Another
            });
        }
        // With the transfer process, a transfer's key, or another command's
        // claim, is in its journal (h102 F2: a refusal was answered instead).
        if let Some(process) = &self.transfers {
            if process
                .key_held_by_another(&claim.key, &claim.fingerprint)
                .await?
            {
                return Ok(EarlierUse::Another);
            }
        }
        Ok(EarlierUse::Nobody)
    }

    /// Frees the key this request claimed in the transfer journal, the
    /// request being refused with nothing of it stored: another request may
    /// use the key, as on the atomic path. A journal that cannot release it
    /// leaves the claim (logged): this request's retry is still answered,
    /// another request with its key is 422.
    async fn release_key(&self, context: &RequestContext) {
        let (Some(process), Some(claim)) = (&self.transfers, &context.idempotency) else {
            return;
        };
        if let Err(error) = process.release_key(&claim.key, &claim.fingerprint).await {
            tracing::warn!(
                %error,
                "a refused request's Idempotency-Key stays claimed in the transfer journal"
            );
        }
    }

    /// The command's wallets' locks, and its turn ([`Admission`]) when it
    /// took one. In process, the turn comes first, in the order commands
    /// came, and the locks with it when they are free: a lock is then held
    /// only by a command that runs, never by one waiting in the queue. When
    /// a wallet is busy the turn is given back and the command waits at the
    /// wallet's lock, holding no turn (h109 F1: 9,000 credits to one
    /// wallet, each holding a turn while it waited for the lock, held all
    /// 256 of them and credits to another wallet waited 11.5 s or were
    /// refused); once the lock is its own it runs without queueing again,
    /// as the command before it on the wallet ran: those behind it on the
    /// wallet wait for its run alone. Commands run at once are then the
    /// turns plus the successors of busy wallets, each holding a wallet no
    /// turn holds. A lock that cannot tell without a round trip (Redis) is
    /// waited for first and the turn taken once it is held, so a burst on
    /// one wallet holds no turn there either.
    async fn lease_and_turn(
        &self,
        wallet_ids: &[&WalletId],
    ) -> Result<(LockLease, Option<SemaphorePermit<'_>>), ServiceError> {
        if !self.lock.tries_without_waiting() {
            let lease = self.lease(wallet_ids).await?;
            return Ok((lease, Some(self.admission.admit().await?)));
        }
        let turn = self.admission.admit().await?;
        if let Some(lease) = self.lock.try_acquire(wallet_ids) {
            return Ok((lease, Some(turn)));
        }
        drop(turn);
        Ok((self.lease(wallet_ids).await?, None))
    }

    async fn lease(&self, wallet_ids: &[&WalletId]) -> Result<LockLease, ServiceError> {
        match self.lock.acquire(wallet_ids).await {
            Ok(lease) => {
                if self.lock_away.swap(false, Ordering::Relaxed) {
                    tracing::info!("wallet lock answers again");
                }
                Ok(lease)
            }
            Err(LockError::TimedOut(wallet_id)) => Err(ServiceError::LockTimedOut(wallet_id)),
            Err(LockError::Unavailable(reason)) => {
                // The expected version still guards the append; go on unlocked.
                if self.lock_away.swap(true, Ordering::Relaxed) {
                    tracing::debug!(%reason, "wallet lock unavailable; continuing without it");
                } else {
                    tracing::warn!(%reason, "wallet lock unavailable; commands go on without it until it answers (counted in wallex_lock_unavailable_total); a busy wallet may answer 409 'changed too often' meanwhile");
                }
                self.metrics.lock_unavailable.inc();
                Ok(LockLease::none())
            }
        }
    }

    /// The wallet to decide on: the cached one with `Reads::Cached` (the
    /// append checks its last event), else the stream as the store holds it.
    pub(super) async fn load(
        &self,
        wallet_id: &WalletId,
        reads: Reads,
    ) -> Result<Loaded, StoreError> {
        if reads == Reads::Cached {
            if let Some(cached) = self.cache.get(wallet_id) {
                return Ok(Loaded::from(cached));
            }
        }
        self.read_through(wallet_id).await
    }

    /// The wallet as the store holds it, read from the cached entry's last
    /// event on (one more row than the tail, to check it is the store's), or
    /// from the start of its stream when the store holds another event there.
    async fn read_through(&self, wallet_id: &WalletId) -> Result<Loaded, StoreError> {
        if let Some(cached) = self.cache.get(wallet_id) {
            let from = cached.wallet.version;
            let events = self.store.read_stream(wallet_id, from - 1).await?;
            if let Some((first, tail)) = events.split_first() {
                if first.stream_version == from && first.event.event_id == cached.last_event_id {
                    let loaded = self.fold_checked(wallet_id, Loaded::from(cached), tail)?;
                    // Nothing folded: the cache holds this very entry, and a
                    // copy of it (every pending hold, the recent events)
                    // would be made only to be refused.
                    if !tail.is_empty() {
                        self.remember(&loaded);
                    }
                    return Ok(loaded);
                }
            }
            tracing::warn!(%wallet_id, version = from, "cached wallet is not the store's; reading its stream");
            self.cache.forget(wallet_id);
        }
        // From the newest snapshot on: a bounded read however long the stream.
        let tail = read_tail(&*self.store, wallet_id).await?;
        let start = Loaded {
            state: tail.base.clone(),
            last_event_id: tail.base_last_event_id,
            recent: RecentEvents::default(),
        };
        let loaded = self.fold_checked(wallet_id, start, &tail.events)?;
        if let (Some(replace), WalletState::Open(wallet), Some(last_event_id)) =
            (tail.snapshot_to_save(), &loaded.state, loaded.last_event_id)
        {
            save_snapshot_of(&*self.store, wallet, last_event_id, replace).await;
        }
        self.remember(&loaded);
        Ok(loaded)
    }

    /// `start` with `events` applied, each checked to continue the stream.
    fn fold_checked(
        &self,
        wallet_id: &WalletId,
        start: Loaded,
        events: &[RecordedEvent],
    ) -> Result<Loaded, StoreError> {
        events.iter().try_fold(start, |loaded, recorded| {
            let state = evolve_checked(wallet_id, loaded.state, recorded)?;
            self.cache.saw_position(recorded.position);
            let mut recent = loaded.recent;
            recent.push(recorded.event.clone());
            Ok(Loaded {
                state,
                last_event_id: Some(recorded.event.event_id),
                recent,
            })
        })
    }

    fn remember(&self, loaded: &Loaded) {
        if let (WalletState::Open(wallet), Some(last_event_id)) =
            (&loaded.state, loaded.last_event_id)
        {
            self.cache.put(CachedWallet {
                wallet: wallet.clone(),
                last_event_id,
                recent: loaded.recent.clone(),
            });
        }
    }

    /// Stores a snapshot of each wallet in `due` the append left (see
    /// [`snapshots_due`]).
    async fn save_snapshots(
        &self,
        outcome: &OperationOutcome,
        due: &[WalletId],
        last_events: &[(WalletId, Uuid)],
    ) {
        for wallet in outcome
            .wallets()
            .into_iter()
            .filter(|wallet| due.contains(&wallet.id))
        {
            if let Some((_, last_event_id)) = last_events.iter().find(|(id, _)| *id == wallet.id) {
                save_snapshot_of(
                    &*self.store,
                    wallet,
                    *last_event_id,
                    SnapshotReplace::OlderOrSame,
                )
                .await;
            }
        }
    }

    /// Caches the wallets an append stored, each with its last event's id
    /// and the events it appended (`recent_events`).
    fn remember_outcome(
        &self,
        outcome: OperationOutcome,
        last_events: &[(WalletId, Uuid)],
        recent_events: &[(WalletId, RecentEvents)],
    ) {
        for wallet in outcome.into_wallets() {
            match last_events
                .iter()
                .find(|(wallet_id, _)| *wallet_id == wallet.id)
            {
                Some((_, last_event_id)) => self.cache.put(CachedWallet {
                    recent: recent_events
                        .iter()
                        .find(|(wallet_id, _)| *wallet_id == wallet.id)
                        .map(|(_, recent)| recent.clone())
                        .unwrap_or_default(),
                    wallet,
                    last_event_id: *last_event_id,
                }),
                None => self.cache.forget(&wallet.id),
            }
        }
    }

    async fn decide(
        &self,
        operation: &WalletOperation,
        context: &RequestContext,
        reads: Reads,
    ) -> Result<(Vec<StreamAppend>, OperationOutcome), ServiceError> {
        let issued_at = now();
        let metadata = metadata(context);
        let command = |wallet_id: &WalletId, kind: CommandKind, metadata: EventMetadata| Command {
            wallet_id: wallet_id.clone(),
            kind,
            event_id: Uuid::now_v7(),
            issued_at,
            metadata,
        };
        match operation {
            WalletOperation::Create {
                wallet_id,
                owner_id,
                initial_balance,
                overdraft_limit,
            } => {
                let kind = CommandKind::Create {
                    owner_id: owner_id.clone(),
                    initial_balance: *initial_balance,
                    overdraft_limit: *overdraft_limit,
                };
                self.decide_single(command(wallet_id, kind, metadata), reads)
                    .await
            }
            WalletOperation::Credit {
                wallet_id,
                amount,
                description,
            } => {
                let kind = CommandKind::Credit {
                    amount: *amount,
                    description: description.clone(),
                };
                self.decide_single(command(wallet_id, kind, metadata), reads)
                    .await
            }
            WalletOperation::Debit {
                wallet_id,
                amount,
                description,
            } => {
                let kind = CommandKind::Debit {
                    amount: *amount,
                    description: description.clone(),
                };
                self.decide_single(command(wallet_id, kind, metadata), reads)
                    .await
            }
            WalletOperation::SetOverdraftLimit {
                wallet_id,
                overdraft_limit,
            } => {
                let kind = CommandKind::SetOverdraftLimit {
                    overdraft_limit: *overdraft_limit,
                };
                self.decide_single(command(wallet_id, kind, metadata), reads)
                    .await
            }
            WalletOperation::Freeze { wallet_id } => {
                self.decide_single(command(wallet_id, CommandKind::Freeze, metadata), reads)
                    .await
            }
            WalletOperation::Unfreeze { wallet_id } => {
                self.decide_single(command(wallet_id, CommandKind::Unfreeze, metadata), reads)
                    .await
            }
            WalletOperation::Close { wallet_id } => {
                self.decide_single(command(wallet_id, CommandKind::Close, metadata), reads)
                    .await
            }
            WalletOperation::PlaceHold { .. }
            | WalletOperation::CaptureHold { .. }
            | WalletOperation::VoidHold { .. }
            | WalletOperation::ExpireHold { .. } => {
                self.decide_hold(operation, issued_at, metadata, reads)
                    .await
            }
            WalletOperation::Transfer {
                from_wallet_id,
                to_wallet_id,
                amount,
                description,
            } => {
                let from_state = self.load(from_wallet_id, reads).await?;
                let to_state = self.load(to_wallet_id, reads).await?;
                let transfer_id = Uuid::now_v7();
                let out = command(
                    from_wallet_id,
                    CommandKind::TransferOut {
                        transfer_id,
                        to_wallet_id: to_wallet_id.clone(),
                        amount: *amount,
                        description: description.clone(),
                    },
                    metadata.clone(),
                );
                // The receiving half is caused by the paying half.
                let received_metadata = EventMetadata {
                    causation_id: Some(out.event_id.to_string()),
                    ..metadata
                };
                let into = command(
                    to_wallet_id,
                    CommandKind::TransferIn {
                        transfer_id,
                        from_wallet_id: from_wallet_id.clone(),
                        amount: *amount,
                        description: description.clone(),
                    },
                    received_metadata,
                );
                let (sent, received) =
                    decide_transfer(&from_state.state, &out, &to_state.state, &into)?;
                let (from, from_append) = applied(from_state, from_wallet_id, sent)?;
                let (to, to_append) = applied(to_state, to_wallet_id, received)?;
                Ok((
                    vec![from_append, to_append],
                    OperationOutcome::Transfer {
                        transfer_id,
                        from,
                        to,
                    },
                ))
            }
        }
    }

    async fn decide_single(
        &self,
        command: Command,
        reads: Reads,
    ) -> Result<(Vec<StreamAppend>, OperationOutcome), ServiceError> {
        let loaded = self.load(&command.wallet_id, reads).await?;
        let events = decide(&loaded.state, &command)?;
        let (wallet, append) = applied(loaded, &command.wallet_id, events)?;
        Ok((vec![append], OperationOutcome::Wallet(wallet)))
    }
}

/// The intent of a transfer operation; `None` for any other operation.
fn transfer_intent(
    operation: &WalletOperation,
    context: &RequestContext,
) -> Option<TransferIntent> {
    let WalletOperation::Transfer {
        from_wallet_id,
        to_wallet_id,
        amount,
        description,
    } = operation
    else {
        return None;
    };
    Some(TransferIntent {
        from_wallet_id: from_wallet_id.clone(),
        to_wallet_id: to_wallet_id.clone(),
        amount: *amount,
        description: description.clone(),
        metadata: metadata(context),
        request_fingerprint: context
            .idempotency
            .as_ref()
            .map(|claim| claim.fingerprint.clone()),
        initiated_at: now(),
        hold_id: None,
    })
}

/// What runs as the transfer process when transfers do.
enum ProcessOrder {
    Transfer(TransferIntent),
    /// A `CaptureHold` command with a `to_wallet_id`.
    Capture(Command),
}

/// What every event of a request carries: its key, correlation and request
/// id, and the principal that caused it.
pub(super) fn metadata(context: &RequestContext) -> EventMetadata {
    EventMetadata {
        principal: context.principal.clone(),
        idempotency_key: context.idempotency.as_ref().map(|claim| claim.key.clone()),
        correlation_id: Some(context.correlation_id.clone()),
        causation_id: Some(context.request_id.to_string()),
    }
}

/// Where a decision reads its wallets from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reads {
    /// The cache when it holds the wallet: the append checks it is the store's.
    Cached,
    /// The store, always: what a refusal is decided on.
    Store,
}

/// A wallet's state with the id of the last event it was folded from (`None`
/// when its stream is empty).
#[derive(Debug, Clone, Default)]
pub(super) struct Loaded {
    pub(super) state: WalletState,
    last_event_id: Option<Uuid>,
    /// The newest of the events it was folded from, the last at its version.
    recent: RecentEvents,
}

impl From<CachedWallet> for Loaded {
    fn from(cached: CachedWallet) -> Self {
        Self {
            state: WalletState::Open(cached.wallet),
            last_event_id: Some(cached.last_event_id),
            recent: cached.recent,
        }
    }
}

/// The state after `events`, and the append that stores them right after the
/// event `loaded` was folded from. Each event is checked to continue the state.
pub(super) fn applied(
    loaded: Loaded,
    wallet_id: &WalletId,
    events: Vec<WalletEvent>,
) -> Result<(Wallet, StreamAppend), ServiceError> {
    let expected_version = loaded.state.version();
    let after = events.iter().try_fold(loaded.state, |state, event| {
        if continues(&state, event) {
            Ok(evolve(state, event))
        } else {
            Err(StoreError::BrokenStream {
                wallet_id: wallet_id.clone(),
                version: state.version() + 1,
            })
        }
    })?;
    let WalletState::Open(wallet) = after else {
        return Err(DomainError::WalletNotFound(wallet_id.clone()).into());
    };
    Ok((
        wallet,
        StreamAppend {
            wallet_id: wallet_id.clone(),
            expected_version,
            expected_last_event_id: loaded.last_event_id,
            events,
        },
    ))
}

/// Whether a decision appends nothing to any stream (see `decide`'s no-op).
fn changes_nothing(streams: &[StreamAppend]) -> bool {
    streams.iter().all(|stream| stream.events.is_empty())
}

/// The wallets whose append crosses a snapshot interval ([`snapshot_due`]).
fn snapshots_due(streams: &[StreamAppend]) -> Vec<WalletId> {
    streams
        .iter()
        .filter(|stream| {
            let added = u64::try_from(stream.events.len()).unwrap_or(u64::MAX);
            snapshot_due(
                stream.expected_version,
                stream.expected_version.saturating_add(added),
            )
        })
        .map(|stream| stream.wallet_id.clone())
        .collect()
}

/// Each stream's wallet and the id of the last event the append adds to it.
fn last_event_ids(streams: &[StreamAppend]) -> Vec<(WalletId, Uuid)> {
    streams
        .iter()
        .filter_map(|stream| {
            let last = stream.events.last()?;
            Some((stream.wallet_id.clone(), last.event_id))
        })
        .collect()
}

/// The events each stream of an append adds, to keep with its cached wallet.
fn appended_events(streams: &[StreamAppend]) -> Vec<(WalletId, RecentEvents)> {
    streams
        .iter()
        .map(|stream| {
            let mut recent = RecentEvents::default();
            for event in &stream.events {
                recent.push(event.clone());
            }
            (stream.wallet_id.clone(), recent)
        })
        .collect()
}

/// Who used an idempotency key before the request that carries it.
enum EarlierUse {
    /// Nobody: the key is free.
    Nobody,
    /// This very request, whose answer is kept.
    This(IdempotentResponse),
    /// Another request.
    Another,
}

fn replay_stored(
    stored: IdempotentResponse,
    claim: &IdempotencyClaim,
) -> Result<Reply, ServiceError> {
    if stored.request_fingerprint != claim.fingerprint {
        return Err(ServiceError::IdempotencyKeyReused(claim.key.clone()));
    }
    Ok(Reply {
        status: stored.status,
        body: stored.body,
        replayed: true,
    })
}
