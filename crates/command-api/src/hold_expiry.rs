//! The hold expiry sweeper: every [`HOLD_EXPIRY_SWEEP_INTERVAL_MS`] it asks
//! the event store's hold directory for pending holds whose `expiresAt` has
//! come (at most [`HOLD_EXPIRY_SWEEP_BATCH_MAX`] a round) and sends one
//! `ExpireHold` per wallet, so a hold's money is released in the log (and
//! the ledger) without anyone calling. The domain decides each expiry from
//! the log and the command's clock, as any command on the wallet would, and
//! one command expires every hold of its wallet that is due: a wallet with
//! 500 holds due at once costs one command, not 500 (499 of them refused,
//! each on the wallet's lock; helper-55's report). A hold settled meanwhile
//! is refused, and the wallet's next listed hold is tried.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::web;
use event_store::DueHold;
use futures::StreamExt;
use tokio::sync::watch;
use uuid::Uuid;
use wallet_domain::{HoldId, WalletId};

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

/// Wallets one round expires holds of at once, at most: a wallet whose lock
/// is busy (a command waits up to its lock wait for it) holds up its own
/// holds, not the other wallets'.
pub const HOLD_EXPIRY_CONCURRENCY_MAX: usize = 16;

/// What one round did.
#[derive(Debug, Default)]
pub struct ExpiryRound {
    /// Wallets whose due holds were expired (each by one command).
    pub wallets: usize,
    /// Expiries that failed (the store away, a wallet's lock busy past its
    /// wait); the next round finds those holds due again.
    pub failed: usize,
    /// The first failure's error, for the log.
    pub first_failure: Option<ServiceError>,
}

/// The due holds by wallet, each wallet once, in the order the directory
/// listed them (first due first), and each wallet's holds in that order.
fn by_wallet(due: Vec<DueHold>) -> Vec<(WalletId, Vec<HoldId>)> {
    let mut wallets: Vec<(WalletId, Vec<HoldId>)> = Vec::new();
    let mut index: HashMap<WalletId, usize> = HashMap::new();
    for hold in due {
        match index.get(&hold.wallet_id) {
            Some(&at) => wallets[at].1.push(hold.hold_id),
            None => {
                index.insert(hold.wallet_id.clone(), wallets.len());
                wallets.push((hold.wallet_id, vec![hold.hold_id]));
            }
        }
    }
    wallets
}

/// Expires the due holds of one wallet with one `ExpireHold`, naming its
/// first listed hold, or the next when the domain refuses that one (settled
/// meanwhile, or not due on the wallet's own clock yet). `Ok(false)` when
/// every hold was refused.
async fn expire_wallet(
    state: &AppState,
    wallet_id: WalletId,
    holds: Vec<HoldId>,
) -> Result<bool, ServiceError> {
    for hold_id in holds {
        let operation = WalletOperation::ExpireHold {
            wallet_id: wallet_id.clone(),
            hold_id,
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
            Ok(_) => return Ok(true),
            Err(ServiceError::Domain(refusal)) => {
                tracing::debug!(%refusal, "a due hold was not expired")
            }
            Err(error) => return Err(error),
        }
    }
    Ok(false)
}

/// Expires the holds due now, the wallets [`HOLD_EXPIRY_CONCURRENCY_MAX`] at
/// once; one that fails leaves the others to go on. Fails only when the due
/// holds cannot be listed.
pub async fn expire_due_holds(state: &AppState) -> Result<ExpiryRound, ServiceError> {
    let due = state
        .wallets
        .store()
        .due_holds(chrono::Utc::now(), HOLD_EXPIRY_SWEEP_BATCH_MAX)
        .await?;
    let outcomes = futures::stream::iter(by_wallet(due))
        .map(|(wallet_id, holds)| expire_wallet(state, wallet_id, holds))
        .buffer_unordered(HOLD_EXPIRY_CONCURRENCY_MAX);
    futures::pin_mut!(outcomes);
    let mut round = ExpiryRound::default();
    while let Some(outcome) = outcomes.next().await {
        match outcome {
            Ok(true) => round.wallets += 1,
            Ok(false) => {}
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
                wallets, failed: 0, ..
            }) => {
                if wallets > 0 {
                    tracing::info!(wallets, "due holds expired")
                }
            }
            Ok(ExpiryRound {
                wallets,
                failed,
                first_failure,
            }) => tracing::warn!(
                wallets,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn due(wallet: &str, hold: &str) -> DueHold {
        DueHold {
            hold_id: HoldId::parse(hold).expect("hold id"),
            wallet_id: WalletId::parse(wallet).expect("wallet id"),
        }
    }

    /// 500 holds of one wallet due at once are one wallet to sweep, not 500
    /// commands; each wallet keeps the directory's order.
    #[test]
    fn due_holds_are_swept_once_per_wallet_in_the_directory_s_order() {
        let mut listed: Vec<DueHold> = (0..500)
            .map(|index| due("w-1", &format!("h-{index}")))
            .collect();
        listed.insert(1, due("w-2", "h-x"));
        let wallets = by_wallet(listed);
        assert_eq!(wallets.len(), 2);
        assert_eq!(wallets[0].0.as_str(), "w-1");
        assert_eq!(wallets[0].1.len(), 500);
        assert_eq!(wallets[0].1[0].as_str(), "h-0");
        assert_eq!(wallets[0].1[499].as_str(), "h-499");
        assert_eq!(wallets[1].0.as_str(), "w-2");
        assert_eq!(wallets[1].1.len(), 1);
    }
}
