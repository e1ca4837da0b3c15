//! The hold expiry sweeper: every [`HOLD_EXPIRY_SWEEP_INTERVAL_MS`] it asks
//! the event store's hold directory for pending holds whose `expiresAt` has
//! come (at most [`HOLD_EXPIRY_SWEEP_BATCH_MAX`] a round) and sends each an
//! `ExpireHold`, so a hold's money is released in the log (and the ledger)
//! without anyone calling. The domain decides each expiry from the log and
//! the command's clock, as any command on the wallet would: a hold settled
//! meanwhile is refused and skipped.

use std::time::Duration;

use actix_web::web;
use futures::StreamExt;
use tokio::sync::watch;
use uuid::Uuid;

use crate::startup::AppState;
use crate::wallets::{ReplyFormat, RequestContext, ServiceError, WalletOperation};

/// How often due holds are looked for while serving.
pub const HOLD_EXPIRY_SWEEP_INTERVAL_MS: u64 = 1_000;
/// Holds expired by one round at most; the rest wait for the next round.
pub const HOLD_EXPIRY_SWEEP_BATCH_MAX: usize = 500;

/// What an expiry answers: nothing is stored or sent for it.
const EXPIRY_REPLY: ReplyFormat = ReplyFormat {
    status: 201,
    render: |_| Ok(String::new()),
};

/// Expiries of one round run at once at most: a wallet whose lock is busy
/// (a command waits up to its lock wait for it) holds up its own holds, not
/// the other wallets'.
pub const HOLD_EXPIRY_CONCURRENCY_MAX: usize = 16;

/// What one round did.
#[derive(Debug, Default)]
pub struct ExpiryRound {
    /// Holds expired.
    pub expired: usize,
    /// Expiries that failed (the store away, a wallet's lock busy past its
    /// wait); the next round finds those holds due again.
    pub failed: usize,
    /// The first failure's error, for the log.
    pub first_failure: Option<ServiceError>,
}

/// Expires the holds due now, [`HOLD_EXPIRY_CONCURRENCY_MAX`] at once; one
/// that fails leaves the others to go on. Fails only when the due holds
/// cannot be listed.
pub async fn expire_due_holds(state: &AppState) -> Result<ExpiryRound, ServiceError> {
    let due = state
        .wallets
        .store()
        .due_holds(chrono::Utc::now(), HOLD_EXPIRY_SWEEP_BATCH_MAX)
        .await?;
    let outcomes = futures::stream::iter(due)
        .map(|hold| {
            let operation = WalletOperation::ExpireHold {
                wallet_id: hold.wallet_id,
                hold_id: hold.hold_id,
            };
            let context = RequestContext {
                principal: None,
                correlation_id: "hold-expiry".into(),
                request_id: Uuid::now_v7(),
                idempotency: None,
            };
            state.wallets.execute(operation, context, EXPIRY_REPLY)
        })
        .buffer_unordered(HOLD_EXPIRY_CONCURRENCY_MAX);
    futures::pin_mut!(outcomes);
    let mut round = ExpiryRound::default();
    while let Some(outcome) = outcomes.next().await {
        match outcome {
            Ok(_) => round.expired += 1,
            // Settled, or not due on the wallet's own clock yet: nothing to do now.
            Err(ServiceError::Domain(refusal)) => {
                tracing::debug!(%refusal, "a due hold was not expired")
            }
            Err(error) => {
                round.failed += 1;
                round.first_failure.get_or_insert(error);
            }
        }
    }
    Ok(round)
}

/// Expires due holds every [`HOLD_EXPIRY_SWEEP_INTERVAL_MS`] until the application stops.
pub async fn sweep_periodically(state: web::Data<AppState>, mut stopping: watch::Receiver<bool>) {
    let interval = Duration::from_millis(HOLD_EXPIRY_SWEEP_INTERVAL_MS);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopping.changed() => return,
        }
        match expire_due_holds(&state).await {
            Ok(ExpiryRound {
                expired, failed: 0, ..
            }) => {
                if expired > 0 {
                    tracing::info!(expired, "due holds expired")
                }
            }
            Ok(ExpiryRound {
                expired,
                failed,
                first_failure,
            }) => tracing::warn!(
                expired,
                failed,
                error = first_failure
                    .map(|error| error.to_string())
                    .unwrap_or_default(),
                "due holds not all expired; the next round tries them again"
            ),
            Err(error) => tracing::warn!(%error, "due holds could not be listed"),
        }
    }
}
