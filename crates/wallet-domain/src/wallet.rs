//! The wallet aggregate and its two pure functions.
//!
//! The invariant: a wallet's available balance never goes below −its
//! overdraft limit. Only money out (debits, transfers out) is checked
//! against it; money in, and a reversal that gives a transfer back, only
//! raise the balance.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandKind};
use crate::error::DomainError;
use crate::event::{EventKind, WalletEvent};
use crate::ids::{OwnerId, WalletId};
use crate::money::{Amount, Balance};
use crate::status::WalletStatus;

/// A wallet as its events left it. Its serde form is the snapshot encoding
/// (see [`crate::snapshot`]): every field travels, so a field added here is
/// snapshotted with no other change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Wallet {
    pub id: WalletId,
    pub owner_id: OwnerId,
    /// Money in minus money out; below zero only within `overdraft_limit`.
    pub balance: Balance,
    /// How far below zero the available balance may go; zero or more.
    pub overdraft_limit: Balance,
    pub status: WalletStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Number of events in the wallet's stream: 1 after creation.
    pub version: u64,
}

impl Wallet {
    /// What the wallet may spend before its overdraft: the balance.
    pub fn available_balance(&self) -> Balance {
        self.balance
    }

    /// The invariant every event keeps: available balance ≥ −overdraft limit.
    pub fn within_limit(&self) -> bool {
        self.available_balance().value() >= -self.overdraft_limit.value()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WalletState {
    #[default]
    Absent,
    Open(Wallet),
}

impl WalletState {
    /// The stream version this state was folded from (0 for no stream).
    pub fn version(&self) -> u64 {
        match self {
            WalletState::Absent => 0,
            WalletState::Open(wallet) => wallet.version,
        }
    }

    pub fn wallet(&self) -> Option<&Wallet> {
        match self {
            WalletState::Absent => None,
            WalletState::Open(wallet) => Some(wallet),
        }
    }
}

/// What an operation needs of the wallet's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Money in, limits: anything but closed.
    NotClosed,
    /// Money out: active only.
    Active,
}

/// Decides which events a command produces, or why it is refused.
pub fn decide(state: &WalletState, command: &Command) -> Result<Vec<WalletEvent>, DomainError> {
    let wallet_id = &command.wallet_id;
    let event = |amount: Balance, balance_after: Balance, kind: EventKind| WalletEvent {
        event_id: command.event_id,
        wallet_id: wallet_id.clone(),
        occurred_at: command.issued_at,
        amount,
        balance_after,
        metadata: command.metadata.clone(),
        kind,
    };
    let open = |needs: Needs| match state {
        WalletState::Open(wallet) => allowed(wallet, needs),
        WalletState::Absent => Err(DomainError::WalletNotFound(wallet_id.clone())),
    };
    let moved = |amount: &Amount, balance_after: Balance, kind: EventKind| {
        let amount = Balance::ZERO
            .checked_add(*amount)
            .ok_or_else(|| DomainError::BalanceOverflow(wallet_id.clone()))?;
        Ok(vec![event(amount, balance_after, kind)])
    };
    // An event that moves no money leaves the balance as it is.
    let unmoved =
        |wallet: &Wallet, kind: EventKind| Ok(vec![event(Balance::ZERO, wallet.balance, kind)]);

    match &command.kind {
        CommandKind::Create {
            owner_id,
            initial_balance,
            overdraft_limit,
        } => match state {
            WalletState::Open(_) => Err(DomainError::WalletAlreadyExists(wallet_id.clone())),
            WalletState::Absent => Ok(vec![event(
                *initial_balance,
                *initial_balance,
                EventKind::WalletCreated {
                    owner_id: owner_id.clone(),
                    overdraft_limit: *overdraft_limit,
                },
            )]),
        },
        CommandKind::Credit {
            amount,
            description,
        } => moved(
            amount,
            credited(open(Needs::NotClosed)?, amount)?,
            EventKind::WalletCredited {
                amount: *amount,
                description: description.clone(),
            },
        ),
        CommandKind::Debit {
            amount,
            description,
        } => moved(
            amount,
            debited(open(Needs::Active)?, amount)?,
            EventKind::WalletDebited {
                amount: *amount,
                description: description.clone(),
            },
        ),
        CommandKind::TransferOut {
            transfer_id,
            to_wallet_id,
            amount,
            description,
        } => {
            if to_wallet_id == wallet_id {
                return Err(DomainError::SameWalletTransfer(wallet_id.clone()));
            }
            moved(
                amount,
                debited(open(Needs::Active)?, amount)?,
                EventKind::TransferSent {
                    transfer_id: *transfer_id,
                    to_wallet_id: to_wallet_id.clone(),
                    amount: *amount,
                    description: description.clone(),
                },
            )
        }
        CommandKind::TransferIn {
            transfer_id,
            from_wallet_id,
            amount,
            description,
        } => {
            if from_wallet_id == wallet_id {
                return Err(DomainError::SameWalletTransfer(wallet_id.clone()));
            }
            moved(
                amount,
                credited(open(Needs::NotClosed)?, amount)?,
                EventKind::TransferReceived {
                    transfer_id: *transfer_id,
                    from_wallet_id: from_wallet_id.clone(),
                    amount: *amount,
                    description: description.clone(),
                },
            )
        }
        // Gives back what the wallet sent: whatever its status became since.
        CommandKind::TransferReverse {
            transfer_id,
            to_wallet_id,
            amount,
        } => {
            let wallet = state
                .wallet()
                .ok_or_else(|| DomainError::WalletNotFound(wallet_id.clone()))?;
            moved(
                amount,
                credited(wallet, amount)?,
                EventKind::TransferReversed {
                    transfer_id: *transfer_id,
                    to_wallet_id: to_wallet_id.clone(),
                    amount: *amount,
                },
            )
        }
        CommandKind::SetOverdraftLimit { overdraft_limit } => {
            let wallet = open(Needs::NotClosed)?;
            let available = wallet.available_balance().value();
            if available < -overdraft_limit.value() {
                return Err(DomainError::OverdraftLimitInUse {
                    wallet_id: wallet_id.clone(),
                    requested: overdraft_limit.value(),
                    available,
                });
            }
            unmoved(
                wallet,
                EventKind::OverdraftLimitSet {
                    overdraft_limit: *overdraft_limit,
                },
            )
        }
        CommandKind::Freeze => unmoved(open(Needs::Active)?, EventKind::WalletFrozen),
        CommandKind::Unfreeze => {
            let wallet = open(Needs::NotClosed)?;
            if wallet.status != WalletStatus::Frozen {
                return Err(DomainError::WalletNotFrozen(wallet_id.clone()));
            }
            unmoved(wallet, EventKind::WalletUnfrozen)
        }
        CommandKind::Close => {
            let wallet = open(Needs::NotClosed)?;
            if !wallet.balance.value().is_zero() {
                return Err(DomainError::WalletNotEmpty {
                    wallet_id: wallet_id.clone(),
                    balance: wallet.balance.value(),
                });
            }
            unmoved(wallet, EventKind::WalletClosed)
        }
    }
}

/// Decides both halves of a transfer as one decision: one wallet on both
/// sides is refused, then an unknown wallet (whatever the amounts), then each
/// half by its own rules. The atomic path appends both results together; the
/// transfer process asks it before it records anything, then stores each
/// half as a step of its own.
pub fn decide_transfer(
    payer: &WalletState,
    sent: &Command,
    payee: &WalletState,
    received: &Command,
) -> Result<(Vec<WalletEvent>, Vec<WalletEvent>), DomainError> {
    if sent.wallet_id == received.wallet_id {
        return Err(DomainError::SameWalletTransfer(sent.wallet_id.clone()));
    }
    for (state, command) in [(payer, sent), (payee, received)] {
        if state.wallet().is_none() {
            return Err(DomainError::WalletNotFound(command.wallet_id.clone()));
        }
    }
    Ok((decide(payer, sent)?, decide(payee, received)?))
}

/// The wallet, when its status allows what the operation needs.
fn allowed(wallet: &Wallet, needs: Needs) -> Result<&Wallet, DomainError> {
    match (wallet.status, needs) {
        (WalletStatus::Closed, _) => Err(DomainError::WalletClosed(wallet.id.clone())),
        (WalletStatus::Frozen, Needs::Active) => Err(DomainError::WalletFrozen(wallet.id.clone())),
        _ => Ok(wallet),
    }
}

fn credited(wallet: &Wallet, amount: &Amount) -> Result<Balance, DomainError> {
    wallet
        .balance
        .checked_add(*amount)
        .ok_or_else(|| DomainError::BalanceOverflow(wallet.id.clone()))
}

/// The balance after taking `amount` out, if the available balance stays at
/// or above −overdraft limit.
fn debited(wallet: &Wallet, amount: &Amount) -> Result<Balance, DomainError> {
    let available = wallet.available_balance();
    let insufficient = || DomainError::InsufficientFunds {
        wallet_id: wallet.id.clone(),
        balance: available.value(),
        requested: amount.value(),
        overdraft_limit: wallet.overdraft_limit.value(),
    };
    let available_after = available.checked_sub(*amount).ok_or_else(insufficient)?;
    if available_after.value() < -wallet.overdraft_limit.value() {
        return Err(insufficient());
    }
    wallet.balance.checked_sub(*amount).ok_or_else(insufficient)
}

/// Whether `event` can follow `state` in its stream: a creation where there is
/// no wallet; any other event on the wallet it names, leaving exactly the
/// wallet's balance plus (or minus) its amount. A stored balance that does not
/// agree with its own stream must never be decided on: readers and writers of
/// the store check every event with this.
pub fn continues(state: &WalletState, event: &WalletEvent) -> bool {
    match (state, &event.kind) {
        (WalletState::Absent, EventKind::WalletCreated { .. }) => true,
        (WalletState::Open(_), EventKind::WalletCreated { .. }) | (WalletState::Absent, _) => false,
        (WalletState::Open(wallet), _) => {
            wallet.id == event.wallet_id
                && wallet.balance.value() + event.signed_amount() == event.balance_after.value()
        }
    }
}

/// Folds one event into the state. Events carry the balance they left, which
/// is what the state takes; the store only ever holds events `decide` made,
/// so an event that does not fit the state is a programmer error.
pub fn evolve(state: WalletState, event: &WalletEvent) -> WalletState {
    match (state, &event.kind) {
        (
            WalletState::Absent,
            EventKind::WalletCreated {
                owner_id,
                overdraft_limit,
            },
        ) => WalletState::Open(Wallet {
            id: event.wallet_id.clone(),
            owner_id: owner_id.clone(),
            balance: event.balance_after,
            overdraft_limit: *overdraft_limit,
            status: WalletStatus::Active,
            created_at: event.occurred_at,
            updated_at: event.occurred_at,
            version: 1,
        }),
        (WalletState::Open(wallet), kind) if !matches!(kind, EventKind::WalletCreated { .. }) => {
            debug_assert_eq!(
                wallet.balance.value() + event.signed_amount(),
                event.balance_after.value(),
                "event {} does not continue the balance of wallet {}",
                event.event_id,
                wallet.id
            );
            let next = Wallet {
                balance: event.balance_after,
                overdraft_limit: kind.overdraft_limit().unwrap_or(wallet.overdraft_limit),
                status: kind.status().unwrap_or(wallet.status),
                updated_at: event.occurred_at,
                version: wallet.version + 1,
                ..wallet
            };
            debug_assert!(
                next.within_limit() || event.signed_amount() > rust_decimal::Decimal::ZERO,
                "event {} takes wallet {} below its overdraft limit",
                event.event_id,
                next.id
            );
            WalletState::Open(next)
        }
        (state, _) => {
            debug_assert!(
                false,
                "event {} ({}) does not apply to wallet state at version {}",
                event.event_id,
                event.type_name(),
                state.version()
            );
            state
        }
    }
}

/// A moment of a wallet's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// After the last event that occurred at or before this time.
    Time(DateTime<Utc>),
    /// After the event that brought the wallet to this version.
    Version(u64),
}

/// Rebuilds a wallet as it stood at `as_of` from its stream, oldest event
/// first: [`WalletState::Absent`] if it did not exist yet. The stream is
/// folded up to the first event past the moment, so the state is always
/// one the wallet really had.
pub fn replay_as_of<'a>(
    events: impl IntoIterator<Item = &'a WalletEvent>,
    as_of: AsOf,
) -> WalletState {
    let mut state = WalletState::Absent;
    for event in events {
        let within = match as_of {
            AsOf::Time(time) => event.occurred_at <= time,
            AsOf::Version(version) => state.version() < version,
        };
        if !within {
            break;
        }
        state = evolve(state, event);
    }
    state
}

/// Rebuilds a wallet from its stream, oldest event first.
pub fn replay<'a>(events: impl IntoIterator<Item = &'a WalletEvent>) -> WalletState {
    events.into_iter().fold(WalletState::Absent, evolve)
}
