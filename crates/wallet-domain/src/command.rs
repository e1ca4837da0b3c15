//! Commands: what a client asks of one wallet.

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use crate::event::EventMetadata;
use crate::ids::{Description, HoldId, OwnerId, WalletId};
use crate::money::{Amount, Balance};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandKind {
    Create {
        owner_id: OwnerId,
        initial_balance: Balance,
        /// How far below zero the balance may go (zero or more).
        overdraft_limit: Balance,
    },
    Credit {
        amount: Amount,
        description: Option<Description>,
    },
    Debit {
        amount: Amount,
        description: Option<Description>,
    },
    /// The paying half of a transfer; decided together with its [`CommandKind::TransferIn`].
    TransferOut {
        transfer_id: Uuid,
        to_wallet_id: WalletId,
        amount: Amount,
        description: Option<Description>,
    },
    /// The receiving half of a transfer.
    TransferIn {
        transfer_id: Uuid,
        from_wallet_id: WalletId,
        amount: Amount,
        description: Option<Description>,
    },
    /// Gives a transfer's paying half back to the payer when its receiving
    /// half was refused.
    TransferReverse {
        transfer_id: Uuid,
        to_wallet_id: WalletId,
        amount: Amount,
    },
    /// Sets how far below zero the balance may go; refused below what is in use.
    SetOverdraftLimit {
        overdraft_limit: Balance,
    },
    /// Stops money going out until [`CommandKind::Unfreeze`].
    Freeze,
    Unfreeze,
    /// Ends the wallet for good; only at a zero balance with no pending hold.
    Close,
    /// Reserves `amount` of the available balance until the hold is
    /// captured, voided or `expires_at` (which must be after the command's
    /// `issued_at`).
    PlaceHold {
        hold_id: HoldId,
        amount: Amount,
        expires_at: Option<DateTime<Utc>>,
        description: Option<Description>,
    },
    /// Takes `amount` (default: all of it) of a pending hold out of the
    /// wallet, releasing the rest; to `to_wallet_id` when given, decided
    /// with its receiving half by [`crate::decide_capture`].
    CaptureHold {
        hold_id: HoldId,
        amount: Option<Amount>,
        to_wallet_id: Option<WalletId>,
        description: Option<Description>,
    },
    /// The receiving half of a capture to this wallet.
    ReceiveCapture {
        hold_id: HoldId,
        from_wallet_id: WalletId,
        amount: Amount,
        description: Option<Description>,
    },
    /// Gives a capture to another wallet back to the payer when its
    /// receiving half was refused (the hold stays captured).
    ReverseCapture {
        hold_id: HoldId,
        to_wallet_id: WalletId,
        amount: Amount,
    },
    /// Releases a pending hold.
    VoidHold {
        hold_id: HoldId,
    },
    /// Releases a pending hold whose `expires_at` is at or before the
    /// command's `issued_at` (what the expiry sweeper sends).
    ExpireHold {
        hold_id: HoldId,
    },
}

/// A clock reading as a command's `issued_at`: to the millisecond, the
/// precision the API shows, so a time read off an answer and given back as
/// `?at=` names the event it was read from.
pub fn issued_at(now: DateTime<Utc>) -> DateTime<Utc> {
    now.trunc_subsecs(3)
}

/// A command addressed to one wallet, with what is needed to stamp its event:
/// the event id and the time are chosen by the caller so `decide` stays pure.
/// `issued_at` is also the clock of hold expiry: a pending hold whose
/// `expires_at` is at or before it no longer counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub wallet_id: WalletId,
    pub kind: CommandKind,
    pub event_id: Uuid,
    pub issued_at: DateTime<Utc>,
    pub metadata: EventMetadata,
}
