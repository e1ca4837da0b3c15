//! The hold expiry sweeper: every [`HOLD_EXPIRY_SWEEP_INTERVAL_MS`] it asks
//! the event store's hold directory for pending holds whose `expiresAt` has
//! come (at most [`HOLD_EXPIRY_SWEEP_BATCH_MAX`] a round) and sends each an
//! `ExpireHold`, so a hold's money is released in the log (and the ledger)
//! without anyone calling. The domain decides each expiry from the log and
//! the command's clock, as any command on the wallet would: a hold settled
//! meanwhile is refused and skipped.

use std::time::Duration;

use actix_web::web;
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

/// Expires the holds due now; returns how many it expired.
pub async fn expire_due_holds(state: &AppState) -> Result<usize, ServiceError> {
    let due = state
        .wallets
        .store()
        .due_holds(chrono::Utc::now(), HOLD_EXPIRY_SWEEP_BATCH_MAX)
        .await?;
    let mut expired = 0;
    for hold in due {
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
        match state
            .wallets
            .execute(operation, context, EXPIRY_REPLY)
            .await
        {
            Ok(_) => expired += 1,
            // Settled, or not due on the wallet's own clock yet: nothing to do now.
            Err(ServiceError::Domain(refusal)) => {
                tracing::debug!(%refusal, "a due hold was not expired")
            }
            Err(error) => return Err(error),
        }
    }
    Ok(expired)
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
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "due holds expired"),
            Err(error) => tracing::warn!(%error, "due holds could not be expired"),
        }
    }
}
