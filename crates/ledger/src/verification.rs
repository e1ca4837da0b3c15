//! The ledger checked against the event store, each wallet at one log position.
//!
//! Both move on while they are read: a ledger snapshot compared with balances
//! read a moment later names healthy wallets (a debit the store has and the
//! ledger has not posted yet). So each wallet is compared at one position of
//! the log: the position of its last event in the ledger's snapshot
//! ([`LedgerVerification::wallets_posted`]); its event-sourced balance is
//! folded from its events in the event store up to that same position. A
//! transfer the ledger holds one half of is in flight, not broken, when the
//! event store at those positions holds one half too (the other is later in
//! the log, or not appended yet: the transfer process is between two steps).
//!
//! The event store is read once, in log order, up to the furthest position
//! posted and at least to the head it had when the check began. The same pass
//! says whether the ledger has caught up: every event up to that head is
//! posted (counted per wallet, so it holds for a ledger fed in log order and
//! for one fed by Kafka partitions, whose checkpoint is only the furthest
//! position, and it sees an event skipped before a later one).
//!
//! Lag is not a fault, a gap is: an event the ledger was delivered and
//! does not have. The caller says up to which log position the ledger was
//! delivered every event, when it knows (the wait of a read for its own
//! writes: the in-process relay's position, or a consumer group's offsets
//! reaching what the relay published); an event up to there that the ledger
//! lacks, or one it skipped before a later one of the same wallet, is
//! missing, and the ledger is not consistent (h141 F2: the newest event of
//! a wallet, lost, passed as lag).
//!
//! A wallet's ledger balance is its account and its held sub-account
//! together; the held sub-account alone is compared with the sum of the
//! wallet's pending holds.
//!
//! Bounds: at most [`VERIFY_WALLETS_MAX`] wallets are compared and at most
//! [`VERIFY_EVENTS_MAX`] events read; past either the answer says it stopped
//! early and how many wallets it checked.

use std::collections::{BTreeMap, HashMap};

use event_store::{EventStore, RecordedEvent, StoreError, READ_ALL_BATCH_MAX};
use rust_decimal::Decimal;
use serde::Serialize;
use uuid::Uuid;
use wallet_domain::{evolve, WalletId, WalletState};

use crate::posting::clearing_reference;
use crate::{Ledger, LedgerError, LedgerVerification, PostedThrough};

/// Wallets compared with the event store in one verification, at most.
pub const VERIFY_WALLETS_MAX: usize = 100_000;
/// Events read from the event store in one verification, at most.
pub const VERIFY_EVENTS_MAX: usize = 10_000_000;

#[derive(Debug, thiserror::Error)]
pub enum VerificationError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("the event store could not be read for the verification: {0}")]
    Store(#[from] StoreError),
}

/// A wallet whose ledger balance (or held balance) differs from its
/// event-sourced one at the same log position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BalanceMismatch {
    pub wallet_id: WalletId,
    /// The log position both balances are taken at.
    pub position: u64,
    #[serde(with = "crate::money_json")]
    pub ledger_balance: Decimal,
    #[serde(with = "crate::money_json")]
    pub event_sourced_balance: Decimal,
    /// The wallet's held sub-account.
    #[serde(with = "crate::money_json")]
    pub ledger_held_balance: Decimal,
    /// The sum of its pending holds.
    #[serde(with = "crate::money_json")]
    pub event_sourced_held_balance: Decimal,
}

/// The answer of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// Every transaction balances, every posted event has its transaction,
    /// no transfer misses a half the event store has, no event is missing
    /// (`eventsMissing`), and every wallet checked has its event-sourced
    /// balance.
    pub ok: bool,
    /// Every event up to `headPosition` is posted.
    pub caught_up: bool,
    /// The event store's last position when the check began.
    pub head_position: u64,
    /// Events up to `headPosition` the ledger has not posted yet.
    pub events_not_posted: u64,
    /// Of those, the ones that are not lag: delivered to the ledger (up to
    /// the position the caller gave) or skipped before a later event of
    /// their wallet. Any makes `ok` false.
    pub events_missing: u64,
    /// Wallets the ledger has.
    pub wallets_in_ledger: usize,
    /// Wallets compared with the event store.
    pub wallets_checked: usize,
    /// A bound ([`VERIFY_WALLETS_MAX`], [`VERIFY_EVENTS_MAX`]) was reached:
    /// some wallets were not compared, and `caughtUp` is false for want of proof.
    pub stopped_early: bool,
    pub balance_mismatches: Vec<BalanceMismatch>,
    /// Transfers the ledger holds one half of, as the event store does at the
    /// positions compared: between their two halves, not broken.
    pub transfers_in_flight: Vec<Uuid>,
    /// The ledger's own check, from one snapshot.
    pub ledger: LedgerVerification,
}

/// The event store's side, folded while the log is read.
struct Fold<'snapshot> {
    posted: &'snapshot BTreeMap<WalletId, PostedThrough>,
    head: u64,
    /// Up to where the ledger was delivered every event, when known.
    delivered_through: Option<u64>,
    /// The wallets compared, each folded up to its position.
    states: BTreeMap<&'snapshot WalletId, WalletState>,
    /// Per wallet, the store's events up to its posted position.
    events_through: HashMap<&'snapshot WalletId, u64>,
    /// Per transfer, what its halves folded so far put in the clearing account.
    clearing: HashMap<Uuid, Decimal>,
    /// Events up to the head past their wallet's posted position.
    behind: u64,
    /// Of those, the ones up to `delivered_through`.
    behind_delivered: u64,
    read_through: u64,
    events_read: usize,
}

impl<'snapshot> Fold<'snapshot> {
    fn new(
        snapshot: &'snapshot LedgerVerification,
        head: u64,
        delivered_through: Option<u64>,
    ) -> Self {
        Self {
            posted: &snapshot.wallets_posted,
            head,
            delivered_through,
            states: snapshot
                .wallets_posted
                .keys()
                .take(VERIFY_WALLETS_MAX)
                .map(|wallet_id| (wallet_id, WalletState::Absent))
                .collect(),
            events_through: HashMap::new(),
            clearing: HashMap::new(),
            behind: 0,
            behind_delivered: 0,
            read_through: 0,
            events_read: 0,
        }
    }

    /// How far the log must be read: the head, and every posted position.
    fn end(&self) -> u64 {
        self.posted
            .values()
            .map(|posted| posted.position)
            .fold(self.head, u64::max)
    }

    fn apply(&mut self, recorded: &RecordedEvent) {
        let event = &recorded.event;
        match self.posted.get_key_value(&event.wallet_id) {
            Some((wallet_id, posted)) if recorded.position <= posted.position => {
                *self.events_through.entry(wallet_id).or_default() += 1;
                if let Some(state) = self.states.get_mut(wallet_id) {
                    *state = evolve(std::mem::take(state), event);
                    if let Some(transfer_id) = clearing_reference(event) {
                        // The clearing account takes what the wallet gives.
                        *self.clearing.entry(transfer_id).or_default() -= event.signed_amount();
                    }
                }
            }
            _ if recorded.position <= self.head => {
                self.behind += 1;
                if self
                    .delivered_through
                    .is_some_and(|delivered| recorded.position <= delivered)
                {
                    self.behind_delivered += 1;
                }
            }
            _ => {}
        }
        self.read_through = recorded.position;
        self.events_read += 1;
    }

    /// Events up to the head the ledger lacks: those past their wallet's
    /// posted position, and those before it the ledger skipped.
    fn not_posted(&self) -> u64 {
        self.behind + self.skipped()
    }

    /// Events the ledger lacks that are no lag: skipped, or delivered.
    fn missing(&self) -> u64 {
        self.behind_delivered + self.skipped()
    }

    /// Events before their wallet's posted position that the ledger lacks
    /// (a wallet's posted count short of the store's).
    fn skipped(&self) -> u64 {
        self.events_through
            .iter()
            .map(|(wallet_id, in_store)| {
                let posted = self
                    .posted
                    .get(*wallet_id)
                    .map_or(0, |posted| posted.events);
                in_store.saturating_sub(posted)
            })
            .sum()
    }

    /// A wallet is compared once the log is read through its position (or
    /// read whole, for a position the log does not have).
    fn judged(&self, wallet_id: &WalletId, read_whole: bool) -> Option<u64> {
        self.posted
            .get(wallet_id)
            .map(|posted| posted.position)
            .filter(|position| read_whole || *position <= self.read_through)
    }
}

/// Reads the event store in log order until `fold` has all it needs.
/// Returns whether it stopped at [`VERIFY_EVENTS_MAX`].
async fn read_log(store: &dyn EventStore, fold: &mut Fold<'_>) -> Result<bool, StoreError> {
    let end = fold.end();
    while fold.read_through < end {
        if fold.events_read >= VERIFY_EVENTS_MAX {
            return Ok(true);
        }
        let batch = store
            .read_all(fold.read_through, READ_ALL_BATCH_MAX)
            .await?;
        if batch.is_empty() {
            break;
        }
        for recorded in batch.iter().take_while(|recorded| recorded.position <= end) {
            fold.apply(recorded);
        }
        if batch.last().is_some_and(|last| last.position >= end) {
            break;
        }
    }
    Ok(false)
}

/// Checks the ledger, and each of its wallets against the event store at the
/// position of the wallet's last posted event (see the module documentation).
/// `delivered_through`: the log position up to which the ledger was
/// delivered every event before this call, when the caller knows it; an
/// event up to there that the ledger lacks is missing, not lag.
pub async fn verify(
    ledger: &dyn Ledger,
    store: &dyn EventStore,
    delivered_through: Option<u64>,
) -> Result<Verification, VerificationError> {
    let head = store.head_position().await?;
    let snapshot = ledger.verify().await?;
    let mut fold = Fold::new(&snapshot, head, delivered_through);
    let events_bound_reached = read_log(store, &mut fold).await?;

    let mut wallets_checked = 0;
    let mut balance_mismatches = Vec::new();
    for (wallet_id, state) in &fold.states {
        let Some(position) = fold.judged(wallet_id, !events_bound_reached) else {
            continue;
        };
        wallets_checked += 1;
        let ledger_balance = snapshot
            .wallet_balances
            .get(*wallet_id)
            .copied()
            .unwrap_or_default();
        let ledger_held_balance = snapshot
            .held_balances
            .get(*wallet_id)
            .copied()
            .unwrap_or_default();
        let (event_sourced_balance, event_sourced_held_balance) = state
            .wallet()
            .map(|wallet| (wallet.balance.value(), wallet.held_balance.value()))
            .unwrap_or_default();
        if ledger_balance != event_sourced_balance
            || ledger_held_balance != event_sourced_held_balance
        {
            balance_mismatches.push(BalanceMismatch {
                wallet_id: (*wallet_id).clone(),
                position,
                ledger_balance,
                event_sourced_balance,
                ledger_held_balance,
                event_sourced_held_balance,
            });
        }
    }
    // A transfer the ledger misses a half of is broken only when the event
    // store has both halves at the positions compared; one not seen at all
    // belongs to wallets not compared.
    let (transfers_in_flight, transfers_broken): (Vec<Uuid>, Vec<Uuid>) = snapshot
        .transfers_missing_half
        .iter()
        .copied()
        .partition(|transfer_id| {
            fold.clearing
                .get(transfer_id)
                .is_none_or(|net| !net.is_zero())
        });
    let events_not_posted = fold.not_posted();
    let events_missing = fold.missing();
    let wallets_in_ledger = snapshot.wallets_posted.len();
    let ledger_sound = snapshot.unbalanced_transactions.is_empty()
        && snapshot.events_posted == snapshot.transactions_checked;
    Ok(Verification {
        ok: ledger_sound
            && events_missing == 0
            && transfers_broken.is_empty()
            && balance_mismatches.is_empty(),
        caught_up: !events_bound_reached && events_not_posted == 0,
        head_position: head,
        events_not_posted,
        events_missing,
        wallets_in_ledger,
        wallets_checked,
        stopped_early: events_bound_reached || wallets_checked < wallets_in_ledger,
        balance_mismatches,
        transfers_in_flight,
        ledger: snapshot,
    })
}
