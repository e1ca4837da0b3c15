//! Errors of the domain. Validation errors say which field is wrong and why;
//! domain errors are business-rule refusals. Neither is ever an internal fault.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::hold::HoldStatus;
use crate::ids::{HoldId, OwnerId, WalletId};

/// A value that could not be parsed into a domain type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct ValidationError {
    pub field: &'static str,
    pub reason: String,
}

impl ValidationError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// A command refused by the business rules. Serializable, so a refusal that
/// ends a transfer process can be stored and given again to a retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DomainError {
    #[error("Wallet {0} already exists")]
    WalletAlreadyExists(WalletId),
    /// A creation names a wallet that exists under another owner than the
    /// one it asks for: a caller creating a wallet for an owner (a payment
    /// gateway) learns that the id is not that owner's, so it does not
    /// credit it thinking it is.
    #[error("Wallet {wallet_id} already exists under another owner than {owner_id}: choose another walletId")]
    WalletOwnedByAnother {
        wallet_id: WalletId,
        owner_id: OwnerId,
    },
    #[error("Wallet {0} not found")]
    WalletNotFound(WalletId),
    /// `balance` is the available balance; `overdraft_limit` how far below
    /// zero it may go (0 for a wallet without overdraft).
    ///
    /// The message names the available balance when holds reserve part of
    /// the balance, and the overdraft limit when there is one; it keeps the
    /// seed's "balance" wording when neither applies.
    #[error("Insufficient funds in wallet {wallet_id}: {}, requested {requested}", funds(*.balance, *.held, *.overdraft_limit))]
    InsufficientFunds {
        wallet_id: WalletId,
        balance: Decimal,
        requested: Decimal,
        #[serde(default)]
        overdraft_limit: Decimal,
        /// What the wallet's pending holds reserve (zero in refusals stored
        /// before it was recorded).
        #[serde(default)]
        held: Decimal,
    },
    /// A transfer's or a capture's `toWalletId` names the paying wallet.
    #[error("Cannot move money from wallet {0} to itself (by a transfer, or by the capture of one of its holds): toWalletId must name another wallet")]
    SameWalletTransfer(WalletId),
    #[error("Balance of wallet {0} would exceed the largest balance a wallet may hold")]
    BalanceOverflow(WalletId),
    #[error(
        "Wallet {0} is frozen: it refuses debits, transfers out, holds, captures and closing until unfrozen"
    )]
    WalletFrozen(WalletId),
    /// A freeze of a wallet that is frozen already: nothing to do.
    #[error("Wallet {0} is already frozen")]
    WalletAlreadyFrozen(WalletId),
    #[error("Wallet {0} is not frozen")]
    WalletNotFrozen(WalletId),
    #[error("Wallet {0} is closed: it refuses every change")]
    WalletClosed(WalletId),
    #[error("Wallet {wallet_id} cannot be closed: it has {count} pending hold(s)")]
    WalletHasPendingHolds { wallet_id: WalletId, count: usize },
    /// Transfers out of the wallet (or captures to another wallet) are
    /// recorded and not finished: their compensation may yet bring money back.
    #[error(
        "Wallet {wallet_id} cannot be closed: {count} transfer(s) out of it are not finished yet; retry in a moment"
    )]
    WalletHasTransfersUnderway { wallet_id: WalletId, count: usize },
    #[error("Wallet {wallet_id} cannot be closed: its balance is {balance}, not 0.00")]
    WalletNotEmpty {
        wallet_id: WalletId,
        balance: Decimal,
    },
    #[error(
        "Overdraft limit of wallet {wallet_id} cannot be {requested}: its available balance is {available}"
    )]
    OverdraftLimitInUse {
        wallet_id: WalletId,
        requested: Decimal,
        available: Decimal,
    },
    /// A hold id the wallet already has (the directory refuses one used on
    /// any other wallet).
    #[error("Hold {0} already exists")]
    HoldAlreadyExists(HoldId),
    /// An expiry asked of a pending hold before its `expiresAt`.
    #[error("Hold {0} has not expired yet")]
    HoldNotDue(HoldId),
    /// Capturing or voiding a hold that is no longer pending. `status` is
    /// what it became when the decision knows it (an expiry it just found),
    /// `None` when it was settled before.
    #[error("Hold {hold_id} is not PENDING{}", status.map(|status| format!(": it is {status}")).unwrap_or_else(|| ": it was captured, voided or expired".to_owned()))]
    HoldNotPending {
        hold_id: HoldId,
        status: Option<HoldStatus>,
    },
    #[error("Cannot capture {requested} of hold {hold_id}: it holds {held}")]
    CaptureExceedsHold {
        hold_id: HoldId,
        held: Decimal,
        requested: Decimal,
    },
    #[error("expiresAt must be in the future")]
    HoldExpiryNotInFuture(HoldId),
    /// A placement on a wallet that has [`crate::hold::PENDING_HOLDS_MAX`]
    /// pending holds already.
    #[error("Wallet {wallet_id} has {count} pending holds, the most a wallet may have: capture, void or let one expire first")]
    TooManyPendingHolds { wallet_id: WalletId, count: usize },
}

/// The funds an insufficient-funds refusal shows: the available balance, and
/// what is held when anything is.
fn funds(available: Decimal, held: Decimal, overdraft_limit: Decimal) -> String {
    let funds = if held.is_zero() {
        format!("balance {available}")
    } else {
        format!("available balance {available} ({held} held)")
    };
    if overdraft_limit.is_zero() {
        funds
    } else {
        format!("{funds}, overdraft limit {overdraft_limit}")
    }
}
