use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;
use wallet_domain::{Amount, Balance, Description, Hold, HoldId, OwnerId, Wallet, WalletId};

/// One API operation; a transfer spans two wallets.
#[derive(Debug, Clone)]
pub enum WalletOperation {
    Create {
        wallet_id: WalletId,
        owner_id: OwnerId,
        initial_balance: Balance,
        overdraft_limit: Balance,
    },
    Credit {
        wallet_id: WalletId,
        amount: Amount,
        description: Option<Description>,
    },
    Debit {
        wallet_id: WalletId,
        amount: Amount,
        description: Option<Description>,
    },
    Transfer {
        from_wallet_id: WalletId,
        to_wallet_id: WalletId,
        amount: Amount,
        description: Option<Description>,
    },
    SetOverdraftLimit {
        wallet_id: WalletId,
        overdraft_limit: Balance,
    },
    Freeze {
        wallet_id: WalletId,
    },
    Unfreeze {
        wallet_id: WalletId,
    },
    Close {
        wallet_id: WalletId,
    },
    PlaceHold {
        wallet_id: WalletId,
        hold_id: HoldId,
        /// Whether the server made `hold_id` (the request named none): the
        /// idempotency fingerprint then leaves it out, so a retry of the
        /// request, given another id, is the same request.
        generated_id: bool,
        amount: Amount,
        expires_at: Option<DateTime<Utc>>,
        description: Option<Description>,
    },
    /// Of the hold's wallet (found in the hold directory); to `to_wallet_id`
    /// when given, as one decision over both wallets.
    CaptureHold {
        wallet_id: WalletId,
        hold_id: HoldId,
        amount: Option<Amount>,
        to_wallet_id: Option<WalletId>,
        description: Option<Description>,
    },
    VoidHold {
        wallet_id: WalletId,
        hold_id: HoldId,
    },
    /// What the expiry sweeper sends for a due hold.
    ExpireHold {
        wallet_id: WalletId,
        hold_id: HoldId,
    },
}

impl WalletOperation {
    pub fn name(&self) -> &'static str {
        match self {
            WalletOperation::Create { .. } => "create",
            WalletOperation::Credit { .. } => "credit",
            WalletOperation::Debit { .. } => "debit",
            WalletOperation::Transfer { .. } => "transfer",
            WalletOperation::SetOverdraftLimit { .. } => "set-overdraft-limit",
            WalletOperation::Freeze { .. } => "freeze",
            WalletOperation::Unfreeze { .. } => "unfreeze",
            WalletOperation::Close { .. } => "close",
            WalletOperation::PlaceHold { .. } => "place-hold",
            WalletOperation::CaptureHold { .. } => "capture-hold",
            WalletOperation::VoidHold { .. } => "void-hold",
            WalletOperation::ExpireHold { .. } => "expire-hold",
        }
    }

    /// The operation in one canonical text, whatever the request's spelling
    /// (`100`, `1e2` and `100.00`; `w%2D1` and `w-1`; a `null` description
    /// and none all read alike): what an idempotency fingerprint digests.
    /// Amounts are at the money scale, so equal amounts print equally.
    pub fn canonical(&self) -> String {
        let text = |description: &Option<Description>| {
            description
                .as_ref()
                .map_or_else(|| "-".to_owned(), |text| format!("{:?}", text.as_str()))
        };
        let or_none = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
        match self {
            WalletOperation::Create {
                wallet_id,
                owner_id,
                initial_balance,
                overdraft_limit,
            } => format!(
                "create {wallet_id} owner={owner_id} opening={initial_balance} overdraft={overdraft_limit}"
            ),
            WalletOperation::SetOverdraftLimit {
                wallet_id,
                overdraft_limit,
            } => format!("overdraft-limit {wallet_id} limit={overdraft_limit}"),
            WalletOperation::Freeze { wallet_id } => format!("freeze {wallet_id}"),
            WalletOperation::Unfreeze { wallet_id } => format!("unfreeze {wallet_id}"),
            WalletOperation::Close { wallet_id } => format!("close {wallet_id}"),
            WalletOperation::Credit {
                wallet_id,
                amount,
                description,
            } => format!(
                "credit {wallet_id} amount={amount} description={}",
                text(description)
            ),
            WalletOperation::Debit {
                wallet_id,
                amount,
                description,
            } => format!(
                "debit {wallet_id} amount={amount} description={}",
                text(description)
            ),
            WalletOperation::Transfer {
                from_wallet_id,
                to_wallet_id,
                amount,
                description,
            } => format!(
                "transfer {from_wallet_id} to={to_wallet_id} amount={amount} description={}",
                text(description)
            ),
            WalletOperation::PlaceHold {
                wallet_id,
                hold_id,
                generated_id,
                amount,
                expires_at,
                description,
            } => format!(
                "hold {wallet_id} id={} amount={amount} expires={} description={}",
                if *generated_id {
                    "-".to_owned()
                } else {
                    format!("{:?}", hold_id.as_str())
                },
                or_none(expires_at.map(expiry_as_asked)),
                text(description)
            ),
            WalletOperation::CaptureHold {
                wallet_id,
                hold_id,
                amount,
                to_wallet_id,
                description,
            } => format!(
                "capture {wallet_id} id={:?} amount={} to={} description={}",
                hold_id.as_str(),
                or_none(amount.map(|amount| amount.to_string())),
                or_none(to_wallet_id.as_ref().map(ToString::to_string)),
                text(description)
            ),
            WalletOperation::VoidHold { wallet_id, hold_id } => {
                format!("void {wallet_id} id={:?}", hold_id.as_str())
            }
            WalletOperation::ExpireHold { wallet_id, hold_id } => {
                format!("expire {wallet_id} id={:?}", hold_id.as_str())
            }
        }
    }

    pub fn wallet_ids(&self) -> Vec<&WalletId> {
        match self {
            WalletOperation::Create { wallet_id, .. }
            | WalletOperation::Credit { wallet_id, .. }
            | WalletOperation::Debit { wallet_id, .. }
            | WalletOperation::SetOverdraftLimit { wallet_id, .. }
            | WalletOperation::Freeze { wallet_id }
            | WalletOperation::Unfreeze { wallet_id }
            | WalletOperation::Close { wallet_id }
            | WalletOperation::PlaceHold { wallet_id, .. }
            | WalletOperation::VoidHold { wallet_id, .. }
            | WalletOperation::ExpireHold { wallet_id, .. }
            | WalletOperation::CaptureHold {
                wallet_id,
                to_wallet_id: None,
                ..
            } => vec![wallet_id],
            WalletOperation::CaptureHold {
                wallet_id,
                to_wallet_id: Some(to_wallet_id),
                ..
            } => vec![wallet_id, to_wallet_id],
            WalletOperation::Transfer {
                from_wallet_id,
                to_wallet_id,
                ..
            } => vec![from_wallet_id, to_wallet_id],
        }
    }
}

/// A hold's expiry as a retry is compared: every digit the request gave (at
/// most nine after the point, all `PlaceHoldRequest` accepts), so two
/// requests that would place different holds never read alike. Printed to
/// the microsecond when nothing finer was given, as fingerprints were before
/// finer digits counted (a key stored then still matches its retry).
fn expiry_as_asked(at: DateTime<Utc>) -> String {
    let digits = if at.timestamp_subsec_nanos().is_multiple_of(1_000) {
        SecondsFormat::Micros
    } else {
        SecondsFormat::Nanos
    };
    at.to_rfc3339_opts(digits, true)
}

/// The wallets as they are once the operation's events are stored.
#[derive(Debug, Clone)]
pub enum OperationOutcome {
    Wallet(Wallet),
    /// A transfer: its id (the `transferId` of both its events), the payer
    /// and the payee.
    Transfer {
        transfer_id: Uuid,
        from: Wallet,
        to: Wallet,
    },
    /// A hold operation: the hold as it is now, its wallet, and the wallet
    /// a capture paid.
    Hold {
        hold: Hold,
        wallet: Wallet,
        payee: Option<Wallet>,
    },
}

impl OperationOutcome {
    /// Every wallet the operation left, borrowed.
    pub fn wallets(&self) -> Vec<&Wallet> {
        match self {
            OperationOutcome::Wallet(wallet) => vec![wallet],
            OperationOutcome::Transfer { from, to, .. } => vec![from, to],
            OperationOutcome::Hold { wallet, payee, .. } => {
                std::iter::once(wallet).chain(payee.as_ref()).collect()
            }
        }
    }

    /// Every wallet the operation left, to cache.
    pub fn into_wallets(self) -> Vec<Wallet> {
        match self {
            OperationOutcome::Wallet(wallet) => vec![wallet],
            OperationOutcome::Transfer { from, to, .. } => vec![from, to],
            OperationOutcome::Hold { wallet, payee, .. } => {
                std::iter::once(wallet).chain(payee).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;

    fn credit(amount: Decimal, description: Option<&str>) -> WalletOperation {
        WalletOperation::Credit {
            wallet_id: WalletId::parse("w-1").expect("id"),
            amount: Amount::parse("amount", amount).expect("amount"),
            description: description.map(|text| Description::parse(text).expect("text")),
        }
    }

    #[test]
    fn the_canonical_form_is_of_the_meaning_not_the_spelling() {
        let plain = credit(Decimal::new(100, 0), None);
        let exponent = credit(Decimal::new(10000, 2), None);
        assert_eq!(plain.canonical(), exponent.canonical());
        assert_ne!(
            plain.canonical(),
            credit(Decimal::new(100, 0), Some("-")).canonical(),
            "a description that reads like the absent marker is not absent"
        );
        assert_ne!(
            credit(Decimal::new(100, 0), Some("a")).canonical(),
            credit(Decimal::new(100, 0), Some("b")).canonical()
        );
    }

    #[test]
    fn an_expiry_is_compared_with_every_digit_the_request_gave() {
        let hold = |expires_at: &str| WalletOperation::PlaceHold {
            wallet_id: WalletId::parse("w-1").expect("id"),
            hold_id: HoldId::parse("h-1").expect("id"),
            generated_id: false,
            amount: Amount::parse("amount", Decimal::ONE).expect("amount"),
            expires_at: Some(
                DateTime::parse_from_rfc3339(expires_at)
                    .expect("time")
                    .with_timezone(&Utc),
            ),
            description: None,
        };
        let whole = hold("2030-01-01T00:00:00Z");
        assert_ne!(
            whole.canonical(),
            hold("2030-01-01T00:00:00.0000001Z").canonical()
        );
        assert_ne!(
            hold("2030-01-01T00:00:00.000000001Z").canonical(),
            hold("2030-01-01T00:00:00.000000002Z").canonical()
        );
        assert_eq!(
            whole.canonical(),
            hold("2030-01-01T01:00:00+01:00").canonical()
        );
        assert!(
            whole
                .canonical()
                .contains("expires=2030-01-01T00:00:00.000000Z"),
            "to the microsecond, as stored fingerprints were: {}",
            whole.canonical()
        );
    }
}
