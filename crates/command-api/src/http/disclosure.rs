//! What a command's reply may show its caller.
//!
//! The service renders a reply with every wallet the command left, and keeps
//! that body for `Idempotency-Key` replays. Before it is sent, each wallet in
//! it that the caller may not read ([`Action::ReadWallet`]) is cut down to a
//! [`WalletReference`] (its id alone): a transfer's payer does not learn the
//! payee's owner, balance, limit or status, and a `deposits` principal does not
//! learn the balance of the wallet it credited. The same rule serves first
//! answers and replays, on the atomic path and through the transfer process.
//! Money is never re-encoded: a wallet the caller may read passes through as
//! the bytes the service rendered.

use identity::{authorize, Action, Principal};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::dto::{WalletReference, WalletReply};
use super::error::ApiError;
use crate::wallets::WalletOperation;

/// How a command's 2xx body holds wallets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyShape {
    /// One wallet (`WalletResponse`).
    Wallet,
    /// `{fromWallet, toWallet}` (`TransferResponse`).
    Transfer,
    /// No wallet's state (a hold).
    NoWallet,
}

impl ReplyShape {
    /// The shape of `operation`'s reply.
    pub fn of(operation: &WalletOperation) -> Self {
        match operation {
            WalletOperation::Transfer { .. } => Self::Transfer,
            WalletOperation::PlaceHold { .. }
            | WalletOperation::CaptureHold { .. }
            | WalletOperation::VoidHold { .. } => Self::NoWallet,
            _ => Self::Wallet,
        }
    }
}

/// The fields of a rendered wallet the rule reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WalletHead {
    id: String,
    owner_id: String,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct TransferBody<'a> {
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    transfer_id: Option<&'a RawValue>,
    #[serde(borrow)]
    from_wallet: &'a RawValue,
    #[serde(borrow)]
    to_wallet: &'a RawValue,
}

/// `body` (a 2xx reply of `shape`) as `caller` may see it.
///
/// # Errors
/// [`ApiError::Internal`] when the body is not the shape the service renders
/// (a bug, not an input).
pub fn disclose(caller: &Principal, shape: ReplyShape, body: String) -> Result<String, ApiError> {
    let unexpected = |error: serde_json::Error| {
        ApiError::Internal(format!("a reply is not the shape it should be: {error}"))
    };
    match shape {
        ReplyShape::NoWallet => Ok(body),
        ReplyShape::Wallet => {
            let wallet: &RawValue = serde_json::from_str(&body).map_err(unexpected)?;
            let shown = shown(caller, wallet).map_err(unexpected)?;
            Ok(shown.map_or(body, |reference| reference.get().to_owned()))
        }
        ReplyShape::Transfer => {
            let transfer: TransferBody<'_> = serde_json::from_str(&body).map_err(unexpected)?;
            let from = shown(caller, transfer.from_wallet).map_err(unexpected)?;
            let to = shown(caller, transfer.to_wallet).map_err(unexpected)?;
            if from.is_none() && to.is_none() {
                return Ok(body);
            }
            serde_json::to_string(&TransferBody {
                transfer_id: transfer.transfer_id,
                from_wallet: from.as_deref().unwrap_or(transfer.from_wallet),
                to_wallet: to.as_deref().unwrap_or(transfer.to_wallet),
            })
            .map_err(unexpected)
        }
    }
}

/// `None` when `caller` may read the rendered `wallet` (it is shown as it
/// is), else its [`WalletReference`].
fn shown(
    caller: &Principal,
    wallet: &RawValue,
) -> Result<Option<Box<RawValue>>, serde_json::Error> {
    let head: WalletHead = serde_json::from_str(wallet.get())?;
    let action = Action::ReadWallet {
        owner_id: Some(&head.owner_id),
    };
    if authorize(caller, action).is_ok() {
        return Ok(None);
    }
    serde_json::value::to_raw_value(&WalletReply::Reference(WalletReference { id: head.id }))
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WALLET: &str = r#"{"id":"w-bob","ownerId":"bob","balance":1000000000000.10,"version":3}"#;

    fn principal(subject: &str, scope: &str) -> Principal {
        Principal::authenticated(subject.to_owned(), scope)
    }

    #[test]
    fn a_wallet_the_caller_may_read_passes_through_byte_for_byte() {
        for caller in [principal("bob", "wallets"), principal("ops", "admin")] {
            let body = disclose(&caller, ReplyShape::Wallet, WALLET.to_owned()).expect("shown");
            assert_eq!(body, WALLET);
        }
    }

    #[test]
    fn a_wallet_the_caller_may_not_read_is_its_id_alone() {
        for caller in [principal("alice", "wallets"), principal("gw", "deposits")] {
            let body = disclose(&caller, ReplyShape::Wallet, WALLET.to_owned()).expect("shown");
            assert_eq!(body, r#"{"id":"w-bob"}"#);
        }
    }

    #[test]
    fn a_transfers_payee_of_another_owner_is_its_id_alone_and_the_payer_stays_exact() {
        let payer = r#"{"id":"w-alice","ownerId":"alice","balance":0.10,"version":9}"#;
        let body = format!(r#"{{"fromWallet":{payer},"toWallet":{WALLET}}}"#);
        let alice = principal("alice", "wallets");
        assert_eq!(
            disclose(&alice, ReplyShape::Transfer, body.clone()).expect("shown"),
            format!(r#"{{"fromWallet":{payer},"toWallet":{{"id":"w-bob"}}}}"#)
        );
        let admin = principal("ops", "admin");
        assert_eq!(
            disclose(&admin, ReplyShape::Transfer, body.clone()).expect("shown"),
            body
        );
    }

    #[test]
    fn a_hold_reply_is_left_as_it_is() {
        let hold = r#"{"holdId":"h-1"}"#;
        let alice = principal("alice", "wallets");
        assert_eq!(
            disclose(&alice, ReplyShape::NoWallet, hold.to_owned()).expect("shown"),
            hold
        );
    }
}
