//! The projection rule both stores apply, as a pure function: from the
//! versions stored for a batch's wallets and the batch, which events apply,
//! which are skipped, whether one leaves a gap, and the row each touched
//! wallet ends with. A store reads the versions, asks [`plan`], and writes the
//! changes and the checkpoint in one transaction.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use event_store::RecordedEvent;
use rust_decimal::Decimal;
use wallet_domain::{Amount, Balance, EventKind, HoldId, OwnerId, WalletId, WalletStatus};

use crate::{ApplyOutcome, ReadModelError};

/// What one batch does to one wallet's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WalletChange {
    pub wallet_id: WalletId,
    /// Set when the batch creates the wallet: the row is inserted, otherwise updated.
    pub created: Option<Creation>,
    pub balance: Decimal,
    /// How the batch moved the held balance (the stored one plus this is the new one).
    pub held_change: Decimal,
    /// Set when the batch sets the overdraft limit; the stored one stays otherwise.
    pub overdraft_limit: Option<Decimal>,
    /// Set when the batch changes the status; the stored one stays otherwise.
    pub status: Option<WalletStatus>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Creation {
    pub owner_id: OwnerId,
    pub created_at: DateTime<Utc>,
}

/// A pending hold with an expiry, kept so that a list can stop counting it
/// as held once it is due, before its `HoldExpired` is in the log.
/// `expires_at` is the instant it stops counting
/// ([`wallet_domain::kept_expiry`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExpiringHold {
    pub wallet_id: WalletId,
    pub hold_id: HoldId,
    pub amount: Amount,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub outcome: ApplyOutcome,
    /// One per wallet the batch moves, in the order the wallets first appear.
    pub changes: Vec<WalletChange>,
    /// Holds with an expiry the batch places, in log order.
    pub expiring_placed: Vec<ExpiringHold>,
    /// Holds the batch captures, voids or expires, as (wallet, hold), in log
    /// order: a store writes [`Plan::expiring_placed`] first, then removes
    /// these, so a hold placed and settled in one batch is not kept.
    pub settled: Vec<(WalletId, HoldId)>,
}

/// The wallets of a batch, each once, in the order they first appear.
pub(crate) fn touched_wallets(events: &[RecordedEvent]) -> Vec<WalletId> {
    let mut seen = HashSet::with_capacity(events.len());
    events
        .iter()
        .map(|recorded| &recorded.event.wallet_id)
        .filter(|wallet_id| seen.insert(*wallet_id))
        .cloned()
        .collect()
}

/// Applies the batch to the stored versions (a wallet absent from `stored`
/// is at version 0). An event at or below a wallet's version is skipped: it
/// was applied already, and this is the projection's deduplication. An event
/// past the next version is a gap: the whole batch is refused.
pub(crate) fn plan(
    events: &[RecordedEvent],
    stored: &HashMap<WalletId, u64>,
) -> Result<Plan, ReadModelError> {
    let mut plan = Plan::default();
    let mut change_of: HashMap<&WalletId, usize> = HashMap::new();
    for recorded in events {
        let event = &recorded.event;
        let current = match change_of.get(&event.wallet_id) {
            Some(&index) => plan.changes[index].version,
            None => stored.get(&event.wallet_id).copied().unwrap_or(0),
        };
        if recorded.stream_version <= current {
            plan.outcome.skipped += 1;
            continue;
        }
        if recorded.stream_version != current + 1 {
            return Err(ReadModelError::Gap {
                wallet_id: event.wallet_id.clone(),
                stored: current,
                arrived: recorded.stream_version,
            });
        }
        match &event.kind {
            EventKind::HoldPlaced {
                hold_id,
                amount,
                expires_at: Some(expires_at),
                ..
            } => plan.expiring_placed.push(ExpiringHold {
                wallet_id: event.wallet_id.clone(),
                hold_id: hold_id.clone(),
                amount: *amount,
                expires_at: wallet_domain::kept_expiry(*expires_at),
            }),
            kind => {
                if let (Some(hold_id), Some(_)) = (kind.hold_id(), kind.hold_settled()) {
                    plan.settled
                        .push((event.wallet_id.clone(), hold_id.clone()));
                }
            }
        }
        let created = match &event.kind {
            EventKind::WalletCreated { owner_id, .. } => Some(Creation {
                owner_id: owner_id.clone(),
                created_at: event.occurred_at,
            }),
            _ => None,
        };
        let change = WalletChange {
            wallet_id: event.wallet_id.clone(),
            created,
            balance: event.balance_after.value(),
            held_change: event.held_change(),
            overdraft_limit: event.kind.overdraft_limit().map(Balance::value),
            status: event.kind.status(),
            updated_at: event.occurred_at,
            version: recorded.stream_version,
        };
        match change_of.get(&event.wallet_id) {
            Some(&index) => {
                let earlier = &mut plan.changes[index];
                // A creation earlier in the batch still decides insert over
                // update; a limit or status set earlier stays unless set again.
                let created = earlier.created.take().or(change.created);
                let overdraft_limit = change.overdraft_limit.or(earlier.overdraft_limit);
                let status = change.status.or(earlier.status);
                let held_change = earlier.held_change + change.held_change;
                *earlier = WalletChange {
                    created,
                    overdraft_limit,
                    status,
                    held_change,
                    ..change
                };
            }
            None => {
                change_of.insert(&event.wallet_id, plan.changes.len());
                plan.changes.push(change);
            }
        }
        plan.outcome.applied += 1;
    }
    Ok(plan)
}

/// A version or position as the stores keep it (a signed 64-bit integer);
/// one past that range is treated as the largest.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
