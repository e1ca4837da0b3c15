//! The wallet aggregate and its two pure functions.
//!
//! The invariant: a wallet's available balance (its balance minus what its
//! pending holds reserve) never goes below −its overdraft limit. Only money
//! out (debits, transfers out, new holds) is checked against it; money in, a
//! reversal that gives a transfer back, and a hold captured, voided or
//! expired only raise the available balance.
//!
//! Hold expiry is decided from the log and the command's `issued_at`: every
//! command on a wallet first expires its pending holds due at that clock
//! (their `HoldExpired` events come before the command's own), so a replay
//! decides the same, and nothing counts a hold past its `expires_at`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::command::{Command, CommandKind};
use crate::error::DomainError;
use crate::event::{EventKind, EventMetadata, WalletEvent};
use crate::hold::{kept_expiry, HoldStatus, PendingHold, PENDING_HOLDS_MAX};
use crate::ids::{HoldId, OwnerId, WalletId};
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
    /// The pending holds, by id (settled ones are only in the stream).
    pub holds: BTreeMap<HoldId, PendingHold>,
    /// The sum of the pending holds' amounts.
    pub held_balance: Balance,
}

impl Wallet {
    /// What the wallet may spend before its overdraft: the balance minus
    /// what its pending holds reserve.
    pub fn available_balance(&self) -> Balance {
        self.balance.saturating_minus(self.held_balance)
    }

    /// The invariant every event keeps: available balance ≥ −overdraft limit.
    pub fn within_limit(&self) -> bool {
        self.available_balance().value() >= -self.overdraft_limit.value()
    }

    /// The wallet as a reader sees it at `clock`: a hold due by then no
    /// longer counts as held, exactly as the next command would expire it
    /// first, whether or not its `HoldExpired` is stored yet.
    pub fn seen_at(mut self, clock: DateTime<Utc>) -> Wallet {
        let pending = self.holds.len();
        self.holds.retain(|_, hold| !hold.is_due(clock));
        if self.holds.len() != pending {
            self.held_balance = self
                .holds
                .values()
                .try_fold(Balance::ZERO, |held, hold| held.checked_add(hold.amount))
                .unwrap_or(self.held_balance);
        }
        self
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

/// Decides which events a command produces, or why it is refused: first the
/// expiry of every pending hold due at the command's clock, then the
/// command's own event, decided on the state those expiries leave.
///
/// The command's clock is its `issued_at`, or the time of the wallet's last
/// event when that is later: a stream's events never go back in time, which
/// [`replay_as_of`] (and the ledger's sums as of a moment) rely on. A clock
/// behind the stream comes from a replica whose clock is behind another's, or
/// from a transfer step resumed after a crash with its intent's time.
///
/// No events (and no error) when the command asks for what the wallet already
/// is, carries no idempotency key and no hold is due: setting the overdraft
/// limit it has.
pub fn decide(state: &WalletState, command: &Command) -> Result<Vec<WalletEvent>, DomainError> {
    let on_stream_clock;
    let command = match state.wallet() {
        Some(wallet) if wallet.updated_at > command.issued_at => {
            on_stream_clock = Command {
                issued_at: wallet.updated_at,
                ..command.clone()
            };
            &on_stream_clock
        }
        _ => command,
    };
    let mut events = expiries_due(state, command);
    // Folded anew only when something expired: the common path clones nothing.
    let expired_state;
    let current = if events.is_empty() {
        state
    } else {
        expired_state = events.iter().fold(state.clone(), evolve);
        &expired_state
    };
    if let CommandKind::CaptureHold { hold_id, .. } | CommandKind::VoidHold { hold_id } =
        &command.kind
    {
        if events
            .iter()
            .any(|event| event.kind.hold_id() == Some(hold_id))
        {
            return Err(DomainError::HoldNotPending {
                hold_id: hold_id.clone(),
                status: Some(HoldStatus::Expired),
            });
        }
    }
    if let CommandKind::ExpireHold { hold_id } = &command.kind {
        return expiry_asked(current, &command.wallet_id, hold_id, events);
    }
    events.extend(decide_now(current, command)?);
    Ok(events)
}

/// The `HoldExpired` events of the wallet's pending holds due at the
/// command's clock, each with an id derived from the command's and the hold's.
/// An expiry is caused by time, not by the caller whose command records it:
/// it carries no principal, as one the sweeper records (the rest of the
/// metadata says which request recorded it).
fn expiries_due(state: &WalletState, command: &Command) -> Vec<WalletEvent> {
    let Some(wallet) = state.wallet() else {
        return Vec::new();
    };
    let metadata = EventMetadata {
        principal: None,
        ..command.metadata.clone()
    };
    wallet
        .holds
        .iter()
        .filter(|(_, hold)| hold.is_due(command.issued_at))
        .map(|(hold_id, hold)| WalletEvent {
            event_id: Uuid::new_v5(&command.event_id, hold_id.as_str().as_bytes()),
            wallet_id: wallet.id.clone(),
            occurred_at: command.issued_at,
            balance_after: wallet.balance,
            metadata: metadata.clone(),
            kind: EventKind::HoldExpired {
                hold_id: hold_id.clone(),
                amount: hold.amount,
            },
        })
        .collect()
}

/// The answer to `ExpireHold`: the expiries due (which must include the
/// hold), or why there is nothing to expire.
fn expiry_asked(
    current: &WalletState,
    wallet_id: &WalletId,
    hold_id: &HoldId,
    expired: Vec<WalletEvent>,
) -> Result<Vec<WalletEvent>, DomainError> {
    if expired
        .iter()
        .any(|event| event.kind.hold_id() == Some(hold_id))
    {
        return Ok(expired);
    }
    let wallet = current
        .wallet()
        .ok_or_else(|| DomainError::WalletNotFound(wallet_id.clone()))?;
    if wallet.holds.contains_key(hold_id) {
        Err(DomainError::HoldNotDue(hold_id.clone()))
    } else {
        Err(DomainError::HoldNotPending {
            hold_id: hold_id.clone(),
            status: None,
        })
    }
}

/// The command's own events on a state with no hold due.
fn decide_now(state: &WalletState, command: &Command) -> Result<Vec<WalletEvent>, DomainError> {
    let wallet_id = &command.wallet_id;
    let event = |balance_after: Balance, kind: EventKind| WalletEvent {
        event_id: command.event_id,
        wallet_id: wallet_id.clone(),
        occurred_at: command.issued_at,
        balance_after,
        metadata: command.metadata.clone(),
        kind,
    };
    let open = |needs: Needs| match state {
        WalletState::Open(wallet) => allowed(wallet, needs),
        WalletState::Absent => Err(DomainError::WalletNotFound(wallet_id.clone())),
    };
    // An event that moves money leaves the balance its decision computed.
    let moved = |balance_after: Balance, kind: EventKind| Ok(vec![event(balance_after, kind)]);
    // An event that moves no money leaves the balance as it is.
    let unmoved = |wallet: &Wallet, kind: EventKind| Ok(vec![event(wallet.balance, kind)]);

    match &command.kind {
        CommandKind::Create {
            owner_id,
            initial_balance,
            overdraft_limit,
        } => match state {
            WalletState::Open(wallet) if wallet.owner_id == *owner_id => {
                Err(DomainError::WalletAlreadyExists(wallet_id.clone()))
            }
            WalletState::Open(_) => Err(DomainError::WalletOwnedByAnother {
                wallet_id: wallet_id.clone(),
                owner_id: owner_id.clone(),
            }),
            WalletState::Absent => Ok(vec![event(
                *initial_balance,
                EventKind::WalletCreated {
                    owner_id: owner_id.clone(),
                    opening_balance: *initial_balance,
                    overdraft_limit: *overdraft_limit,
                },
            )]),
        },
        CommandKind::Credit {
            amount,
            description,
        } => moved(
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
                credited(wallet, amount)?,
                EventKind::TransferReversed {
                    transfer_id: *transfer_id,
                    to_wallet_id: to_wallet_id.clone(),
                    amount: *amount,
                },
            )
        }
        // Gives back what a capture took to another wallet, whatever the
        // payer's status became since; the hold stays captured.
        CommandKind::ReverseCapture {
            hold_id,
            to_wallet_id,
            amount,
        } => {
            let wallet = state
                .wallet()
                .ok_or_else(|| DomainError::WalletNotFound(wallet_id.clone()))?;
            moved(
                credited(wallet, amount)?,
                EventKind::HoldCaptureReversed {
                    hold_id: hold_id.clone(),
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
            // Setting the limit the wallet has changes nothing: no event, no
            // version. Unless the request carries an idempotency key: its
            // answer is kept with the events it produced (on every event
            // store, KurrentDB's included), and a retry after another change,
            // or the key reused for another request, must find it.
            if wallet.overdraft_limit == *overdraft_limit
                && command.metadata.idempotency_key.is_none()
            {
                return Ok(Vec::new());
            }
            unmoved(
                wallet,
                EventKind::OverdraftLimitSet {
                    overdraft_limit: *overdraft_limit,
                },
            )
        }
        CommandKind::Freeze => {
            let wallet = open(Needs::NotClosed)?;
            if wallet.status == WalletStatus::Frozen {
                return Err(DomainError::WalletAlreadyFrozen(wallet_id.clone()));
            }
            unmoved(wallet, EventKind::WalletFrozen)
        }
        CommandKind::Unfreeze => {
            let wallet = open(Needs::NotClosed)?;
            if wallet.status != WalletStatus::Frozen {
                return Err(DomainError::WalletNotFrozen(wallet_id.clone()));
            }
            unmoved(wallet, EventKind::WalletUnfrozen)
        }
        CommandKind::Close => {
            // A freeze is an administrator's: the owner may not end it by closing.
            let wallet = open(Needs::Active)?;
            if !wallet.holds.is_empty() {
                return Err(DomainError::WalletHasPendingHolds {
                    wallet_id: wallet_id.clone(),
                    count: wallet.holds.len(),
                });
            }
            if !wallet.balance.value().is_zero() {
                return Err(DomainError::WalletNotEmpty {
                    wallet_id: wallet_id.clone(),
                    balance: wallet.balance.value(),
                });
            }
            unmoved(wallet, EventKind::WalletClosed)
        }
        CommandKind::PlaceHold {
            hold_id,
            amount,
            expires_at,
            description,
        } => {
            let wallet = open(Needs::Active)?;
            if expires_at.is_some_and(|expires_at| kept_expiry(expires_at) <= command.issued_at) {
                return Err(DomainError::HoldExpiryNotInFuture(hold_id.clone()));
            }
            if wallet.holds.contains_key(hold_id) {
                return Err(DomainError::HoldAlreadyExists(hold_id.clone()));
            }
            if wallet.holds.len() >= PENDING_HOLDS_MAX {
                return Err(DomainError::TooManyPendingHolds {
                    wallet_id: wallet_id.clone(),
                    count: wallet.holds.len(),
                });
            }
            check_available(wallet, amount)?;
            wallet
                .held_balance
                .checked_add(*amount)
                .ok_or_else(|| DomainError::BalanceOverflow(wallet_id.clone()))?;
            Ok(vec![event(
                wallet.balance,
                EventKind::HoldPlaced {
                    hold_id: hold_id.clone(),
                    amount: *amount,
                    expires_at: *expires_at,
                    description: description.clone(),
                },
            )])
        }
        CommandKind::CaptureHold {
            hold_id,
            amount,
            to_wallet_id,
            description,
        } => {
            // The hold first, then the wallet's status: a hold already
            // settled answers "not PENDING" on a frozen wallet too, as one
            // whose expiry is not recorded yet does (found by `decide`).
            let hold = pending(open(Needs::NotClosed)?, hold_id)?;
            let wallet = open(Needs::Active)?;
            if to_wallet_id.as_ref() == Some(wallet_id) {
                return Err(DomainError::SameWalletTransfer(wallet_id.clone()));
            }
            let captured = amount.unwrap_or(hold.amount);
            if captured > hold.amount {
                return Err(DomainError::CaptureExceedsHold {
                    hold_id: hold_id.clone(),
                    held: hold.amount.value(),
                    requested: captured.value(),
                });
            }
            let overflow = || DomainError::BalanceOverflow(wallet_id.clone());
            let released = Balance::from(hold.amount)
                .checked_sub(captured)
                .ok_or_else(overflow)?;
            let balance_after = wallet.balance.checked_sub(captured).ok_or_else(overflow)?;
            Ok(vec![event(
                balance_after,
                EventKind::HoldCaptured {
                    hold_id: hold_id.clone(),
                    amount: captured,
                    released,
                    to_wallet_id: to_wallet_id.clone(),
                    description: description.clone(),
                },
            )])
        }
        CommandKind::ReceiveCapture {
            hold_id,
            from_wallet_id,
            amount,
            description,
        } => {
            if from_wallet_id == wallet_id {
                return Err(DomainError::SameWalletTransfer(wallet_id.clone()));
            }
            moved(
                credited(open(Needs::NotClosed)?, amount)?,
                EventKind::HoldCaptureReceived {
                    hold_id: hold_id.clone(),
                    from_wallet_id: from_wallet_id.clone(),
                    amount: *amount,
                    description: description.clone(),
                },
            )
        }
        CommandKind::VoidHold { hold_id } => {
            let wallet = open(Needs::NotClosed)?;
            let hold = pending(wallet, hold_id)?;
            Ok(vec![event(
                wallet.balance,
                EventKind::HoldVoided {
                    hold_id: hold_id.clone(),
                    amount: hold.amount,
                },
            )])
        }
        // Answered by `decide`, which holds the expiries due.
        CommandKind::ExpireHold { hold_id } => Err(DomainError::HoldNotDue(hold_id.clone())),
    }
}

/// The wallet's pending hold of that id.
fn pending<'a>(wallet: &'a Wallet, hold_id: &HoldId) -> Result<&'a PendingHold, DomainError> {
    wallet
        .holds
        .get(hold_id)
        .ok_or_else(|| DomainError::HoldNotPending {
            hold_id: hold_id.clone(),
            status: None,
        })
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
    both_wallets((payer, &sent.wallet_id), (payee, &received.wallet_id))?;
    Ok((decide(payer, sent)?, decide(payee, received)?))
}

/// Decides a capture of a hold as one decision over both wallets, by the
/// rules of [`decide_transfer`]: with a `to_wallet_id`, the payer's
/// `HoldCaptured` and the payee's `HoldCaptureReceived` of the amount
/// captured (its command from [`capture_received`]); without one, the
/// payer's events and none for `payee`, which is ignored. The atomic path
/// appends both results together; the transfer process asks it before it
/// records anything, then stores each half as a step of its own, the
/// payee's from [`capture_halves`].
pub fn decide_capture(
    payer: &WalletState,
    capture: &Command,
    payee: &WalletState,
) -> Result<(Vec<WalletEvent>, Vec<WalletEvent>), DomainError> {
    let CommandKind::CaptureHold {
        to_wallet_id: Some(to_wallet_id),
        ..
    } = &capture.kind
    else {
        return Ok((decide(payer, capture)?, Vec::new()));
    };
    both_wallets((payer, &capture.wallet_id), (payee, to_wallet_id))?;
    let sent = decide(payer, capture)?;
    let received = match sent.iter().find_map(capture_received) {
        Some(received) => decide(payee, &received)?,
        None => Vec::new(),
    };
    Ok((sent, received))
}

/// The receiving half of a capture to another wallet, from its
/// `HoldCaptured` event (`None` for any other event, or a capture that was a
/// debit), at the same time, with the same metadata, caused by it: its event
/// id is derived from the capture's, so a step replayed after a crash finds it.
pub fn capture_received(captured: &WalletEvent) -> Option<Command> {
    let EventKind::HoldCaptured { amount, .. } = &captured.kind else {
        return None;
    };
    let capture = Command {
        wallet_id: captured.wallet_id.clone(),
        kind: CommandKind::CaptureHold {
            hold_id: captured.kind.hold_id()?.clone(),
            amount: Some(*amount),
            to_wallet_id: captured.kind.counterparty().cloned(),
            description: captured.kind.description().cloned(),
        },
        event_id: captured.event_id,
        issued_at: captured.occurred_at,
        metadata: captured.metadata.clone(),
    };
    capture_halves(&capture).map(|halves| halves.received)
}

/// The commands of a capture to another wallet run one wallet at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureHalves {
    /// The payee's `ReceiveCapture` of the amount captured.
    pub received: Command,
    /// The payer's `ReverseCapture`, when the payee refused it.
    pub reversed: Command,
}

/// The payee's half and the payer's compensation of `capture`, a
/// `CaptureHold` to another wallet of an explicit amount (`None` for any
/// other command): at the capture's time, with its metadata, caused by it,
/// each with an event id derived from the capture's, so a step replayed after
/// a crash finds its event.
pub fn capture_halves(capture: &Command) -> Option<CaptureHalves> {
    let CommandKind::CaptureHold {
        hold_id,
        amount: Some(amount),
        to_wallet_id: Some(to_wallet_id),
        description,
    } = &capture.kind
    else {
        return None;
    };
    let half = |wallet_id: &WalletId, name: &[u8], kind: CommandKind| Command {
        wallet_id: wallet_id.clone(),
        kind,
        event_id: Uuid::new_v5(&capture.event_id, name),
        issued_at: capture.issued_at,
        metadata: EventMetadata {
            causation_id: Some(capture.event_id.to_string()),
            ..capture.metadata.clone()
        },
    };
    Some(CaptureHalves {
        received: half(
            to_wallet_id,
            b"received",
            CommandKind::ReceiveCapture {
                hold_id: hold_id.clone(),
                from_wallet_id: capture.wallet_id.clone(),
                amount: *amount,
                description: description.clone(),
            },
        ),
        reversed: half(
            &capture.wallet_id,
            b"reversed",
            CommandKind::ReverseCapture {
                hold_id: hold_id.clone(),
                to_wallet_id: to_wallet_id.clone(),
                amount: *amount,
            },
        ),
    })
}

/// What a decision over two wallets needs first: two wallets, both there.
fn both_wallets(
    payer: (&WalletState, &WalletId),
    payee: (&WalletState, &WalletId),
) -> Result<(), DomainError> {
    if payer.1 == payee.1 {
        return Err(DomainError::SameWalletTransfer(payer.1.clone()));
    }
    for (state, wallet_id) in [payer, payee] {
        if state.wallet().is_none() {
            return Err(DomainError::WalletNotFound(wallet_id.clone()));
        }
    }
    Ok(())
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
    check_available(wallet, amount)?;
    wallet
        .balance
        .checked_sub(*amount)
        .ok_or_else(|| insufficient(wallet, amount))
}

/// Whether `amount` may leave (or be held on) the wallet: its available
/// balance stays at or above −overdraft limit.
fn check_available(wallet: &Wallet, amount: &Amount) -> Result<(), DomainError> {
    let available_after = wallet
        .available_balance()
        .checked_sub(*amount)
        .ok_or_else(|| insufficient(wallet, amount))?;
    if available_after.value() < -wallet.overdraft_limit.value() {
        return Err(insufficient(wallet, amount));
    }
    Ok(())
}

fn insufficient(wallet: &Wallet, amount: &Amount) -> DomainError {
    DomainError::InsufficientFunds {
        wallet_id: wallet.id.clone(),
        balance: wallet.available_balance().value(),
        requested: amount.value(),
        overdraft_limit: wallet.overdraft_limit.value(),
        held: wallet.held_balance.value(),
    }
}

/// Whether `event` can follow `state` in its stream: a creation where there is
/// no wallet; any other event on the wallet it names, leaving exactly the
/// wallet's balance plus (or minus) its amount; a hold placed under a new id,
/// settled only while pending and for its whole amount. A stored balance that
/// does not agree with its own stream must never be decided on: readers and
/// writers of the store check every event with this.
pub fn continues(state: &WalletState, event: &WalletEvent) -> bool {
    match (state, &event.kind) {
        (WalletState::Absent, EventKind::WalletCreated { .. }) => true,
        (WalletState::Open(_), EventKind::WalletCreated { .. }) | (WalletState::Absent, _) => false,
        (WalletState::Open(wallet), kind) => {
            wallet.id == event.wallet_id
                && wallet.balance.value() + event.signed_amount() == event.balance_after.value()
                && hold_continues(wallet, kind)
        }
    }
}

fn hold_continues(wallet: &Wallet, kind: &EventKind) -> bool {
    match (kind, kind.hold_settled()) {
        (EventKind::HoldPlaced { hold_id, .. }, _) => !wallet.holds.contains_key(hold_id),
        (_, Some(settled)) => kind
            .hold_id()
            .and_then(|hold_id| wallet.holds.get(hold_id))
            .is_some_and(|hold| Balance::from(hold.amount) == settled),
        _ => true,
    }
}

/// The pending holds and held balance after `event`.
fn holds_after(
    mut holds: BTreeMap<HoldId, PendingHold>,
    mut held: Balance,
    event: &WalletEvent,
) -> (BTreeMap<HoldId, PendingHold>, Balance) {
    match &event.kind {
        EventKind::HoldPlaced {
            hold_id,
            amount,
            expires_at,
            description,
        } => {
            holds.insert(
                hold_id.clone(),
                PendingHold {
                    amount: *amount,
                    expires_at: *expires_at,
                    description: description.clone(),
                    placed_at: event.occurred_at,
                },
            );
            held = held.checked_add(*amount).unwrap_or(held);
        }
        EventKind::HoldCaptured { hold_id, .. }
        | EventKind::HoldVoided { hold_id, .. }
        | EventKind::HoldExpired { hold_id, .. } => {
            if let Some(hold) = holds.remove(hold_id) {
                held = held.checked_sub(hold.amount).unwrap_or(held);
            }
        }
        _ => {}
    }
    (holds, held)
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
                ..
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
            holds: BTreeMap::new(),
            held_balance: Balance::ZERO,
        }),
        (WalletState::Open(mut wallet), kind)
            if !matches!(kind, EventKind::WalletCreated { .. }) =>
        {
            debug_assert_eq!(
                wallet.balance.value() + event.signed_amount(),
                event.balance_after.value(),
                "event {} does not continue the balance of wallet {}",
                event.event_id,
                wallet.id
            );
            debug_assert!(
                hold_continues(&wallet, kind),
                "event {} does not fit the holds of wallet {}",
                event.event_id,
                wallet.id
            );
            let (holds, held_balance) = holds_after(
                std::mem::take(&mut wallet.holds),
                wallet.held_balance,
                event,
            );
            let next = Wallet {
                balance: event.balance_after,
                holds,
                held_balance,
                overdraft_limit: kind.overdraft_limit().unwrap_or(wallet.overdraft_limit),
                status: kind.status().unwrap_or(wallet.status),
                updated_at: event.occurred_at,
                version: wallet.version + 1,
                ..wallet
            };
            debug_assert!(
                next.within_limit()
                    || event.signed_amount() > rust_decimal::Decimal::ZERO
                    || kind.hold_settled().is_some(),
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
    fold_as_of(WalletState::Absent, events, as_of)
}

/// [`replay_as_of`] from `state` (a snapshot's) on: `events` are the ones
/// after it. The state is the whole stream's as of the moment when `state`
/// itself is not past it: a version at or above its own, or a time at or
/// after its last event's (a stream's events never go back in time, see
/// [`decide`]).
pub fn fold_as_of<'a>(
    mut state: WalletState,
    events: impl IntoIterator<Item = &'a WalletEvent>,
    as_of: AsOf,
) -> WalletState {
    for event in events {
        if !within_as_of(&state, event, as_of) {
            break;
        }
        state = evolve(state, event);
    }
    state
}

/// Whether `event`, the next of its stream after `state`, is part of the
/// stream as of `as_of`: it occurred at or before the moment, or the state
/// is below the version. The rule of [`fold_as_of`], for a reader that folds
/// with checks of its own.
pub fn within_as_of(state: &WalletState, event: &WalletEvent, as_of: AsOf) -> bool {
    match as_of {
        AsOf::Time(time) => event.occurred_at <= time,
        AsOf::Version(version) => state.version() < version,
    }
}

/// Rebuilds a wallet from its stream, oldest event first.
pub fn replay<'a>(events: impl IntoIterator<Item = &'a WalletEvent>) -> WalletState {
    events.into_iter().fold(WalletState::Absent, evolve)
}
