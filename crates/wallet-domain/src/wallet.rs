//! The wallet aggregate and its two pure functions.

use chrono::{DateTime, Utc};

use crate::command::{Command, CommandKind};
use crate::error::DomainError;
use crate::event::{EventKind, WalletEvent};
use crate::ids::{OwnerId, WalletId};
use crate::money::{Amount, Balance};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wallet {
    pub id: WalletId,
    pub owner_id: OwnerId,
    pub balance: Balance,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Number of events in the wallet's stream: 1 after creation.
    pub version: u64,
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
    let open = || match state {
        WalletState::Open(wallet) => Ok(wallet),
        WalletState::Absent => Err(DomainError::WalletNotFound(wallet_id.clone())),
    };
    let moved = |amount: &Amount| Balance::ZERO.checked_add(*amount);
    let single = |amount: &Amount, balance_after: Balance, kind: EventKind| {
        let amount =
            moved(amount).ok_or_else(|| DomainError::BalanceOverflow(wallet_id.clone()))?;
        Ok(vec![event(amount, balance_after, kind)])
    };

    match &command.kind {
        CommandKind::Create {
            owner_id,
            initial_balance,
        } => match state {
            WalletState::Open(_) => Err(DomainError::WalletAlreadyExists(wallet_id.clone())),
            WalletState::Absent => Ok(vec![event(
                *initial_balance,
                *initial_balance,
                EventKind::WalletCreated {
                    owner_id: owner_id.clone(),
                },
            )]),
        },
        CommandKind::Credit {
            amount,
            description,
        } => {
            let balance_after = credited(open()?, amount)?;
            single(
                amount,
                balance_after,
                EventKind::WalletCredited {
                    amount: *amount,
                    description: description.clone(),
                },
            )
        }
        CommandKind::Debit {
            amount,
            description,
        } => {
            let balance_after = debited(open()?, amount)?;
            single(
                amount,
                balance_after,
                EventKind::WalletDebited {
                    amount: *amount,
                    description: description.clone(),
                },
            )
        }
        CommandKind::TransferOut {
            transfer_id,
            to_wallet_id,
            amount,
            description,
        } => {
            if to_wallet_id == wallet_id {
                return Err(DomainError::SameWalletTransfer(wallet_id.clone()));
            }
            let balance_after = debited(open()?, amount)?;
            single(
                amount,
                balance_after,
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
            let balance_after = credited(open()?, amount)?;
            single(
                amount,
                balance_after,
                EventKind::TransferReceived {
                    transfer_id: *transfer_id,
                    from_wallet_id: from_wallet_id.clone(),
                    amount: *amount,
                    description: description.clone(),
                },
            )
        }
        CommandKind::TransferReverse {
            transfer_id,
            to_wallet_id,
            amount,
        } => {
            let balance_after = credited(open()?, amount)?;
            single(
                amount,
                balance_after,
                EventKind::TransferReversed {
                    transfer_id: *transfer_id,
                    to_wallet_id: to_wallet_id.clone(),
                    amount: *amount,
                },
            )
        }
    }
}

fn credited(wallet: &Wallet, amount: &Amount) -> Result<Balance, DomainError> {
    wallet
        .balance
        .checked_add(*amount)
        .ok_or_else(|| DomainError::BalanceOverflow(wallet.id.clone()))
}

fn debited(wallet: &Wallet, amount: &Amount) -> Result<Balance, DomainError> {
    wallet
        .balance
        .checked_sub(*amount)
        .ok_or_else(|| DomainError::InsufficientFunds {
            wallet_id: wallet.id.clone(),
            balance: wallet.balance.value(),
            requested: amount.value(),
        })
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
        (WalletState::Absent, EventKind::WalletCreated { owner_id }) => WalletState::Open(Wallet {
            id: event.wallet_id.clone(),
            owner_id: owner_id.clone(),
            balance: event.balance_after,
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
            WalletState::Open(Wallet {
                balance: event.balance_after,
                updated_at: event.occurred_at,
                version: wallet.version + 1,
                ..wallet
            })
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

/// Rebuilds a wallet from its stream, oldest event first.
pub fn replay<'a>(events: impl IntoIterator<Item = &'a WalletEvent>) -> WalletState {
    events.into_iter().fold(WalletState::Absent, evolve)
}
