//! Command handling: idempotency, lock, load, decide, append, retry.
//!
//! A transfer is one atomic append to both wallet streams when the store can
//! do that; otherwise (KurrentDB, or `TRANSFERS=process`) it runs through the
//! [`TransferProcess`] under the same wallet lock.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use event_store::{
    AppendError, AppendRequest, EventStore, IdempotentResponse, StoreError, StreamAppend,
};
use transfer_process::{
    transfer_id_for_key, Ending, ProcessError, TransferIntent, TransferJournal, TransferProcess,
    TransferReply, TransferRequest,
};
use uuid::Uuid;
use wallet_domain::{
    decide, decide_transfer, evolve, replay, replay_as_of, AsOf, Command, CommandKind, DomainError,
    EventMetadata, Wallet, WalletEvent, WalletId, WalletState,
};
use wallet_lock::{LockError, LockLease, WalletLock};

use super::cache::WalletCache;
use super::operation::{OperationOutcome, WalletOperation};
use crate::metrics::Metrics;

/// Attempts of one command when its expected version turns out stale.
pub const CONFLICT_ATTEMPTS_MAX: usize = 16;

#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub key: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone)]
pub struct RequestContext {
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
    #[error("Idempotency-Key {0:?} was already used for a different request")]
    IdempotencyKeyReused(String),
    #[error("wallet {0} is busy; retry the request")]
    LockTimedOut(WalletId),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not encode the response: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error(transparent)]
    Transfer(ProcessError),
    #[error("the transfer task stopped before it answered: {0}")]
    TransferAborted(String),
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
}

fn now() -> DateTime<Utc> {
    // Millisecond precision is what the API shows; keeping only that makes
    // stored and displayed times equal.
    Utc::now().trunc_subsecs(3)
}

impl WalletService {
    pub fn new(store: Arc<dyn EventStore>, lock: Arc<dyn WalletLock>, metrics: Metrics) -> Self {
        Self {
            store,
            lock,
            cache: WalletCache::default(),
            metrics,
            transfers: None,
        }
    }

    /// Runs transfers through the transfer process, recorded in `journal`
    /// and answered with `reply`.
    pub fn with_transfer_process(
        mut self,
        journal: Arc<dyn TransferJournal>,
        reply: TransferReply,
    ) -> Self {
        self.transfers = Some(Arc::new(TransferProcess::new(
            Arc::clone(&self.store),
            journal,
            reply,
        )));
        self
    }

    /// Finishes the transfers a crash left unfinished (none without the
    /// process); to be called before serving.
    pub async fn resume_unfinished_transfers(&self) -> Result<usize, ProcessError> {
        match &self.transfers {
            Some(process) => process.resume_unfinished().await,
            None => Ok(0),
        }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The wallet with every stored event applied, including other processes'.
    pub async fn current(&self, wallet_id: &WalletId) -> Result<Option<Wallet>, StoreError> {
        let state = match self.cache.get(wallet_id) {
            Some(cached) => {
                let version = cached.version;
                let tail = self.store.read_stream(wallet_id, version).await?;
                tail.iter()
                    .map(|recorded| &recorded.event)
                    .fold(WalletState::Open(cached), evolve)
            }
            None => self.load(wallet_id).await?,
        };
        Ok(self.remember(state))
    }

    /// The wallet as it stood at `as_of`, folded from its whole stream;
    /// `None` if it did not exist yet.
    pub async fn as_of(
        &self,
        wallet_id: &WalletId,
        as_of: AsOf,
    ) -> Result<Option<Wallet>, StoreError> {
        let stream = self.store.read_stream(wallet_id, 0).await?;
        let events = stream.iter().map(|recorded| &recorded.event);
        Ok(match replay_as_of(events, as_of) {
            WalletState::Open(wallet) => Some(wallet),
            WalletState::Absent => None,
        })
    }

    pub async fn execute(
        &self,
        operation: WalletOperation,
        context: RequestContext,
        format: ReplyFormat,
    ) -> Result<Reply, ServiceError> {
        // A repeated idempotency key is found where it matters, without a read
        // on the common path: its append fails on the stored key, or, when the
        // first request changed the wallet, the rules refuse the repeat.
        let wallet_ids = operation.wallet_ids();
        let lease = self.lease(&wallet_ids).await?;
        if let Some(process) = &self.transfers {
            if let Some(intent) = transfer_intent(&operation, &context) {
                let reply = self
                    .transfer_by_process(process, intent, &context, lease)
                    .await;
                for wallet_id in &wallet_ids {
                    self.cache.forget(wallet_id);
                }
                return reply;
            }
            // A key a transfer recorded in the journal is not in the store's
            // idempotency records: look there too.
            if let Some(claim) = &context.idempotency {
                if process.key_is_taken(&claim.key).await? {
                    return Err(ServiceError::IdempotencyKeyReused(claim.key.clone()));
                }
            }
        }
        let _lease = lease;
        for _ in 0..CONFLICT_ATTEMPTS_MAX {
            let (streams, outcome) = match self.decide(&operation, &context).await {
                Ok(decided) => decided,
                Err(refusal @ ServiceError::Domain(_)) => {
                    return self.replay_or(refusal, &context).await
                }
                Err(error) => return Err(error),
            };
            let body = (format.render)(&outcome)?;
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
                Ok(_) => {
                    self.remember_outcome(outcome);
                    return Ok(Reply {
                        status: format.status,
                        body,
                        replayed: false,
                    });
                }
                Err(AppendError::VersionConflict { wallet_id, .. }) => {
                    self.metrics.conflict_retries.inc();
                    self.cache.forget(&wallet_id);
                }
                Err(AppendError::IdempotencyKeyTaken(key)) => {
                    return self
                        .replay_or(ServiceError::IdempotencyKeyReused(key), &context)
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

    /// A transfer as a process: the key's earlier answer from the store if a
    /// non-transfer request used it, else the process's answer.
    async fn transfer_by_process(
        &self,
        process: &Arc<TransferProcess>,
        intent: TransferIntent,
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
        let running = tokio::spawn(async move {
            let _lease = lease;
            process
                .run(TransferRequest {
                    transfer_id,
                    intent,
                })
                .await
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
            Ending::Failed { refusal } => Err(refusal.into()),
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
        match self.store.find_idempotent_response(&claim.key).await? {
            Some(stored) => replay_stored(stored, claim),
            None => Err(error),
        }
    }

    async fn lease(&self, wallet_ids: &[&WalletId]) -> Result<LockLease, ServiceError> {
        match self.lock.acquire(wallet_ids).await {
            Ok(lease) => Ok(lease),
            Err(LockError::TimedOut(wallet_id)) => Err(ServiceError::LockTimedOut(wallet_id)),
            Err(LockError::Unavailable(reason)) => {
                // The expected version still guards the append; go on unlocked.
                tracing::warn!(%reason, "wallet lock unavailable; continuing without it");
                self.metrics.lock_unavailable.inc();
                Ok(LockLease::none())
            }
        }
    }

    async fn load(&self, wallet_id: &WalletId) -> Result<WalletState, StoreError> {
        if let Some(wallet) = self.cache.get(wallet_id) {
            return Ok(WalletState::Open(wallet));
        }
        let stream = self.store.read_stream(wallet_id, 0).await?;
        Ok(replay(stream.iter().map(|recorded| &recorded.event)))
    }

    fn remember(&self, state: WalletState) -> Option<Wallet> {
        let WalletState::Open(wallet) = state else {
            return None;
        };
        self.cache.put(wallet.clone());
        Some(wallet)
    }

    fn remember_outcome(&self, outcome: OperationOutcome) {
        match outcome {
            OperationOutcome::Wallet(wallet) => self.cache.put(wallet),
            OperationOutcome::Transfer { from, to } => {
                self.cache.put(from);
                self.cache.put(to);
            }
        }
    }

    async fn decide(
        &self,
        operation: &WalletOperation,
        context: &RequestContext,
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
                self.decide_single(command(wallet_id, kind, metadata)).await
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
                self.decide_single(command(wallet_id, kind, metadata)).await
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
                self.decide_single(command(wallet_id, kind, metadata)).await
            }
            WalletOperation::SetOverdraftLimit {
                wallet_id,
                overdraft_limit,
            } => {
                let kind = CommandKind::SetOverdraftLimit {
                    overdraft_limit: *overdraft_limit,
                };
                self.decide_single(command(wallet_id, kind, metadata)).await
            }
            WalletOperation::Freeze { wallet_id } => {
                self.decide_single(command(wallet_id, CommandKind::Freeze, metadata))
                    .await
            }
            WalletOperation::Unfreeze { wallet_id } => {
                self.decide_single(command(wallet_id, CommandKind::Unfreeze, metadata))
                    .await
            }
            WalletOperation::Close { wallet_id } => {
                self.decide_single(command(wallet_id, CommandKind::Close, metadata))
                    .await
            }
            WalletOperation::Transfer {
                from_wallet_id,
                to_wallet_id,
                amount,
                description,
            } => {
                let from_state = self.load(from_wallet_id).await?;
                let to_state = self.load(to_wallet_id).await?;
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
                let (sent, received) = decide_transfer(&from_state, &out, &to_state, &into)?;
                let (from, from_append) = applied(from_state, from_wallet_id, sent)?;
                let (to, to_append) = applied(to_state, to_wallet_id, received)?;
                Ok((
                    vec![from_append, to_append],
                    OperationOutcome::Transfer { from, to },
                ))
            }
        }
    }

    async fn decide_single(
        &self,
        command: Command,
    ) -> Result<(Vec<StreamAppend>, OperationOutcome), ServiceError> {
        let state = self.load(&command.wallet_id).await?;
        let events = decide(&state, &command)?;
        let (wallet, append) = applied(state, &command.wallet_id, events)?;
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
    })
}

/// What every event of a request carries: its key, correlation and request id.
fn metadata(context: &RequestContext) -> EventMetadata {
    EventMetadata {
        idempotency_key: context.idempotency.as_ref().map(|claim| claim.key.clone()),
        correlation_id: Some(context.correlation_id.clone()),
        causation_id: Some(context.request_id.to_string()),
    }
}

/// The state after `events`, and the append that stores them at the version `state` was read at.
fn applied(
    state: WalletState,
    wallet_id: &WalletId,
    events: Vec<WalletEvent>,
) -> Result<(Wallet, StreamAppend), ServiceError> {
    let expected_version = state.version();
    let after = events.iter().fold(state, evolve);
    let WalletState::Open(wallet) = after else {
        return Err(DomainError::WalletNotFound(wallet_id.clone()).into());
    };
    Ok((
        wallet,
        StreamAppend {
            wallet_id: wallet_id.clone(),
            expected_version,
            events,
        },
    ))
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
