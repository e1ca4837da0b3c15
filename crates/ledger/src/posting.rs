//! Posting rules: which accounts each wallet event moves money between.
//!
//! Pure functions, no I/O. Every event becomes one ledger transaction whose
//! entries sum to exactly zero. An amount is signed from the account's view:
//! positive increases the account, so a wallet's ledger balance is the sum of
//! the entries on `wallet:<id>`.
//!
//! | event            | entries                                         |
//! | ---------------- | ----------------------------------------------- |
//! | WalletCreated    | wallet +opening, external:settlement −opening   |
//! | WalletCredited   | wallet +amount, external:settlement −amount     |
//! | WalletDebited    | wallet −amount, external:settlement +amount     |
//! | TransferSent     | wallet −amount, clearing:transfers +amount      |
//! | TransferReceived | wallet +amount, clearing:transfers −amount      |
//! | TransferReversed | wallet +amount, clearing:transfers −amount      |
//! | OverdraftLimitSet, WalletFrozen, WalletUnfrozen, WalletClosed | none (`WALLET_UPDATED`) |
//! | HoldPlaced       | wallet −amount, held +amount (`HOLD_PLACED`)   |
//! | HoldVoided, HoldExpired | held −amount, wallet +amount (`HOLD_RELEASED`) |
//! | HoldCaptured     | held −hold, wallet +released, external:settlement +captured (`HOLD_CAPTURED`); to another wallet, clearing:transfers +captured |
//! | HoldCaptureReceived | wallet +amount, clearing:transfers −amount (`TRANSFER_IN`) |
//! | HoldCaptureReversed | wallet +amount, clearing:transfers −amount (`TRANSFER_IN`) |
//!
//! A wallet's money is on two accounts: `wallet:<id>` (what it may spend
//! before its overdraft: its available balance) and `held:<id>` (what its
//! pending holds reserve). Their sum is the wallet's balance. Every event of
//! one hold shares a reference id derived from the hold's id
//! ([`hold_reference`]), so a capture to another wallet nets the clearing
//! account to zero under it, as a transfer does.
//!
//! An overdrawn wallet's account is simply negative: an overdraft posts like
//! any debit or transfer out. A change that moves no money (a limit, a
//! freeze, a closing) is recorded as a `WALLET_UPDATED` transaction with no
//! entries, so every event still has its transaction.
//!
//! A creation with a zero opening balance moves no money: its transaction is
//! recorded (so the wallet's creation is in the ledger) with no entries at all,
//! rather than with two entries of zero that would show up as movements.
//!
//! The two halves of a transfer are separate events on separate wallets and
//! may be posted in separate batches; through the clearing account each half
//! balances on its own, and the clearing account nets to zero per transfer
//! once both halves are in.
//!
//! A reversal (the transfer process gives the paying half back when the
//! receiving half is refused) takes the money out of the clearing account
//! back to the payer, under the transfer's reference: the clearing account
//! nets to zero for that transfer too, so a reversed transfer is complete,
//! not missing a half. It is posted as `TRANSFER_IN` (money into the wallet
//! through the clearing account), with a description that says it is a
//! reversal.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use event_store::RecordedEvent;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wallet_domain::{EventKind, HoldId, WalletEvent, WalletId};

/// Account of money entering and leaving the system (deposits, withdrawals,
/// opening balances).
pub const EXTERNAL_SETTLEMENT: &str = "external:settlement";
/// Account that holds a transfer's money between its sent and received halves.
pub const CLEARING_TRANSFERS: &str = "clearing:transfers";
/// Prefix of a wallet's account: `wallet:<wallet id>`.
pub const WALLET_ACCOUNT_PREFIX: &str = "wallet:";
/// Prefix of a wallet's held sub-account: `held:<wallet id>`.
pub const HELD_ACCOUNT_PREFIX: &str = "held:";
/// The namespace of the reference ids of holds (UUID v5 of the hold id).
pub const HOLD_REFERENCE_NAMESPACE: Uuid =
    Uuid::from_u128(0x6f1d_4b3e_9a52_4c1e_8d07_5b2a_c3e4_f190);

/// The reference id every ledger transaction of one hold shares.
pub fn hold_reference(hold_id: &HoldId) -> Uuid {
    Uuid::new_v5(&HOLD_REFERENCE_NAMESPACE, hold_id.as_str().as_bytes())
}

/// What kind of operation a ledger transaction records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransactionType {
    WalletCreated,
    Credit,
    Debit,
    TransferOut,
    TransferIn,
    /// A change of the wallet that moves no money.
    WalletUpdated,
    /// Money reserved: from the wallet's account to its held sub-account.
    HoldPlaced,
    /// A hold voided or expired: from the held sub-account back.
    HoldReleased,
    /// A hold captured: out of the held sub-account, the rest back.
    HoldCaptured,
}

impl TransactionType {
    pub const ALL: [TransactionType; 9] = [
        TransactionType::WalletCreated,
        TransactionType::Credit,
        TransactionType::Debit,
        TransactionType::TransferOut,
        TransactionType::TransferIn,
        TransactionType::WalletUpdated,
        TransactionType::HoldPlaced,
        TransactionType::HoldReleased,
        TransactionType::HoldCaptured,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            TransactionType::WalletCreated => "WALLET_CREATED",
            TransactionType::Credit => "CREDIT",
            TransactionType::Debit => "DEBIT",
            TransactionType::TransferOut => "TRANSFER_OUT",
            TransactionType::TransferIn => "TRANSFER_IN",
            TransactionType::WalletUpdated => "WALLET_UPDATED",
            TransactionType::HoldPlaced => "HOLD_PLACED",
            TransactionType::HoldReleased => "HOLD_RELEASED",
            TransactionType::HoldCaptured => "HOLD_CAPTURED",
        }
    }
}

impl fmt::Display for TransactionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown transaction type {0:?}")]
pub struct UnknownTransactionType(pub String);

impl FromStr for TransactionType {
    type Err = UnknownTransactionType;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        TransactionType::ALL
            .into_iter()
            .find(|candidate| candidate.as_str() == text)
            .ok_or_else(|| UnknownTransactionType(text.to_owned()))
    }
}

/// A ledger account, written as `wallet:<id>`, `held:<id>`,
/// `external:settlement` or `clearing:transfers`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Account {
    Wallet(WalletId),
    /// What the wallet's pending holds reserve.
    Held(WalletId),
    ExternalSettlement,
    ClearingTransfers,
}

impl Account {
    /// The wallet of its own account (not of its held sub-account).
    pub fn wallet_id(&self) -> Option<&WalletId> {
        match self {
            Account::Wallet(wallet_id) => Some(wallet_id),
            _ => None,
        }
    }

    /// The names of a wallet's two accounts, its own and its held
    /// sub-account: what a wallet's entries and totals are read from.
    pub(crate) fn names_of_wallet(wallet_id: &WalletId) -> [String; 2] {
        [
            Account::Wallet(wallet_id.clone()).to_string(),
            Account::Held(wallet_id.clone()).to_string(),
        ]
    }

    /// The wallet of either of its two accounts.
    pub fn owning_wallet(&self) -> Option<&WalletId> {
        match self {
            Account::Wallet(wallet_id) | Account::Held(wallet_id) => Some(wallet_id),
            _ => None,
        }
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::Wallet(wallet_id) => write!(f, "{WALLET_ACCOUNT_PREFIX}{wallet_id}"),
            Account::Held(wallet_id) => write!(f, "{HELD_ACCOUNT_PREFIX}{wallet_id}"),
            Account::ExternalSettlement => f.write_str(EXTERNAL_SETTLEMENT),
            Account::ClearingTransfers => f.write_str(CLEARING_TRANSFERS),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown ledger account {0:?}")]
pub struct UnknownAccount(pub String);

impl FromStr for Account {
    type Err = UnknownAccount;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            EXTERNAL_SETTLEMENT => Ok(Account::ExternalSettlement),
            CLEARING_TRANSFERS => Ok(Account::ClearingTransfers),
            _ => {
                let wallet = |prefix| {
                    text.strip_prefix(prefix)
                        .and_then(|raw| WalletId::parse(raw).ok())
                };
                wallet(WALLET_ACCOUNT_PREFIX)
                    .map(Account::Wallet)
                    .or_else(|| wallet(HELD_ACCOUNT_PREFIX).map(Account::Held))
                    .ok_or_else(|| UnknownAccount(text.to_owned()))
            }
        }
    }
}

impl TryFrom<String> for Account {
    type Error = UnknownAccount;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Account> for String {
    fn from(account: Account) -> String {
        account.to_string()
    }
}

/// One line of a ledger transaction: a signed amount on one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub account: Account,
    /// Positive increases the account, negative decreases it.
    pub amount: Decimal,
}

/// The ledger's record of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerTransaction {
    /// The event id: an event is posted at most once.
    pub id: Uuid,
    /// The transfer id for either half of a transfer, the event id otherwise:
    /// every transaction of one operation shares it.
    pub reference_id: Uuid,
    pub transaction_type: TransactionType,
    /// The wallet whose event this is.
    pub wallet_id: WalletId,
    pub occurred_at: DateTime<Utc>,
    pub description: String,
    /// Sums to exactly zero; empty for a creation with a zero opening balance.
    pub entries: Vec<Posting>,
}

impl LedgerTransaction {
    /// The sum of the entries: zero for every transaction [`postings`] makes.
    pub fn sum(&self) -> Decimal {
        self.entries.iter().map(|posting| posting.amount).sum()
    }
}

/// The reference under which an event moves money through
/// `clearing:transfers` (a transfer's halves and reversal, a capture to
/// another wallet and its receiving event or reversal); `None` for any
/// other event.
pub fn clearing_reference(event: &WalletEvent) -> Option<Uuid> {
    match &event.kind {
        EventKind::HoldCaptured {
            hold_id,
            to_wallet_id: Some(_),
            ..
        }
        | EventKind::HoldCaptureReceived { hold_id, .. }
        | EventKind::HoldCaptureReversed { hold_id, .. } => Some(hold_reference(hold_id)),
        kind => kind.transfer_id(),
    }
}

/// The ledger transaction of one recorded event.
pub fn postings(recorded: &RecordedEvent) -> LedgerTransaction {
    let event = &recorded.event;
    let (transaction_type, entries) = match &event.kind {
        EventKind::HoldPlaced { .. }
        | EventKind::HoldVoided { .. }
        | EventKind::HoldExpired { .. }
        | EventKind::HoldCaptured { .. } => hold_entries(event),
        _ => plain_entries(event),
    };
    let reference_id = match (event.kind.transfer_id(), event.kind.hold_id()) {
        (Some(transfer_id), _) => transfer_id,
        (None, Some(hold_id)) => hold_reference(hold_id),
        (None, None) => event.event_id,
    };
    let transaction = LedgerTransaction {
        id: event.event_id,
        reference_id,
        transaction_type,
        wallet_id: event.wallet_id.clone(),
        occurred_at: event.occurred_at,
        description: description(event),
        entries,
    };
    debug_assert!(
        transaction.sum().is_zero(),
        "transaction {} does not balance",
        transaction.id
    );
    transaction
}

/// An event that moves money between the wallet's account and one other.
fn plain_entries(event: &WalletEvent) -> (TransactionType, Vec<Posting>) {
    let (transaction_type, counter_account) = match &event.kind {
        EventKind::WalletCreated { .. } => {
            (TransactionType::WalletCreated, Account::ExternalSettlement)
        }
        EventKind::WalletCredited { .. } => (TransactionType::Credit, Account::ExternalSettlement),
        EventKind::WalletDebited { .. } => (TransactionType::Debit, Account::ExternalSettlement),
        EventKind::TransferSent { .. } => {
            (TransactionType::TransferOut, Account::ClearingTransfers)
        }
        EventKind::TransferReceived { .. }
        | EventKind::TransferReversed { .. }
        | EventKind::HoldCaptureReceived { .. }
        | EventKind::HoldCaptureReversed { .. } => {
            (TransactionType::TransferIn, Account::ClearingTransfers)
        }
        // No money moves, so no entry is made and the counter account is unused.
        _ => (TransactionType::WalletUpdated, Account::ExternalSettlement),
    };
    // Money into the wallet is positive for it, and the counter account gives it.
    let wallet_amount = event.signed_amount();
    let entries = if event.amount().value().is_zero() {
        Vec::new()
    } else {
        vec![
            Posting {
                account: Account::Wallet(event.wallet_id.clone()),
                amount: wallet_amount,
            },
            Posting {
                account: counter_account,
                amount: -wallet_amount,
            },
        ]
    };
    (transaction_type, entries)
}

/// A hold's events: between the wallet's account and its held sub-account,
/// and for a capture out of the held sub-account to settlement or clearing.
fn hold_entries(event: &WalletEvent) -> (TransactionType, Vec<Posting>) {
    let wallet = Account::Wallet(event.wallet_id.clone());
    let held = Account::Held(event.wallet_id.clone());
    let posting = |account: &Account, amount: Decimal| Posting {
        account: account.clone(),
        amount,
    };
    let moved = event.amount().value();
    match &event.kind {
        EventKind::HoldPlaced { .. } => (
            TransactionType::HoldPlaced,
            vec![posting(&wallet, -moved), posting(&held, moved)],
        ),
        EventKind::HoldCaptured {
            released,
            to_wallet_id,
            ..
        } => {
            let payee = match to_wallet_id {
                Some(_) => Account::ClearingTransfers,
                None => Account::ExternalSettlement,
            };
            let mut entries = vec![
                posting(&held, -(moved + released.value())),
                posting(&payee, moved),
            ];
            if !released.value().is_zero() {
                entries.insert(1, posting(&wallet, released.value()));
            }
            (TransactionType::HoldCaptured, entries)
        }
        _ => (
            TransactionType::HoldReleased,
            vec![posting(&held, -moved), posting(&wallet, moved)],
        ),
    }
}

/// What stands in a ledger description for a U+0000 of an event's: PostgreSQL
/// `text` cannot hold U+0000, and events stored before the API refused
/// control characters may have one. Every ledger writes the same text.
pub const NUL_REPLACEMENT: char = '\u{FFFD}';

/// The client's description when there is one (U+0000 replaced by
/// [`NUL_REPLACEMENT`]), otherwise one that says what happened.
pub fn description(event: &WalletEvent) -> String {
    if let Some(description) = event.kind.description() {
        return description
            .as_str()
            .replace('\0', &NUL_REPLACEMENT.to_string());
    }
    match &event.kind {
        EventKind::WalletCreated { .. } => "Opening balance".to_owned(),
        EventKind::WalletCredited { .. } => "Credit".to_owned(),
        EventKind::WalletDebited { .. } => "Debit".to_owned(),
        EventKind::TransferSent { to_wallet_id, .. } => format!("Transfer to {to_wallet_id}"),
        EventKind::TransferReceived { from_wallet_id, .. } => {
            format!("Transfer from {from_wallet_id}")
        }
        EventKind::TransferReversed { to_wallet_id, .. } => {
            format!("Reversal of transfer to {to_wallet_id}")
        }
        EventKind::OverdraftLimitSet { overdraft_limit } => {
            format!("Overdraft limit set to {overdraft_limit}")
        }
        EventKind::WalletFrozen => "Wallet frozen".to_owned(),
        EventKind::WalletUnfrozen => "Wallet unfrozen".to_owned(),
        EventKind::WalletClosed => "Wallet closed".to_owned(),
        EventKind::HoldPlaced { hold_id, .. } => format!("Hold {hold_id}"),
        EventKind::HoldCaptured {
            hold_id,
            to_wallet_id: Some(to_wallet_id),
            ..
        } => format!("Capture of hold {hold_id} to {to_wallet_id}"),
        EventKind::HoldCaptured { hold_id, .. } => format!("Capture of hold {hold_id}"),
        EventKind::HoldCaptureReceived {
            hold_id,
            from_wallet_id,
            ..
        } => format!("Capture of hold {hold_id} from {from_wallet_id}"),
        EventKind::HoldCaptureReversed {
            hold_id,
            to_wallet_id,
            ..
        } => format!("Reversal of the capture of hold {hold_id} to {to_wallet_id}"),
        EventKind::HoldVoided { hold_id, .. } => format!("Void of hold {hold_id}"),
        EventKind::HoldExpired { hold_id, .. } => format!("Expiry of hold {hold_id}"),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;
    use wallet_domain::{Amount, Balance, Description, EventMetadata, HoldId, OwnerId};

    use super::*;

    fn wallet_id(raw: &str) -> WalletId {
        WalletId::parse(raw).expect("test wallet id")
    }

    fn cents(value: i64) -> Decimal {
        Decimal::new(value, 2)
    }

    fn amount(value: i64) -> Amount {
        Amount::parse("amount", cents(value)).expect("test amount")
    }

    fn recorded(wallet: &str, kind: EventKind) -> RecordedEvent {
        RecordedEvent {
            position: 7,
            stream_version: 1,
            event: WalletEvent {
                event_id: Uuid::new_v4(),
                wallet_id: wallet_id(wallet),
                occurred_at: Utc
                    .with_ymd_and_hms(2025, 10, 23, 10, 0, 0)
                    .single()
                    .expect("time"),
                // The posting rules never read the resulting balance.
                balance_after: Balance::ZERO,
                metadata: EventMetadata::default(),
                kind,
            },
        }
    }

    fn created(wallet: &str, opening: i64) -> RecordedEvent {
        recorded(
            wallet,
            EventKind::WalletCreated {
                owner_id: OwnerId::parse("owner-1").expect("owner"),
                opening_balance: Balance::opening("opening", cents(opening)).expect("test balance"),
                overdraft_limit: Balance::ZERO,
            },
        )
    }

    fn sent(from: &str, to: &str, transfer_id: Uuid, value: i64) -> RecordedEvent {
        recorded(
            from,
            EventKind::TransferSent {
                transfer_id,
                to_wallet_id: wallet_id(to),
                amount: amount(value),
                description: None,
            },
        )
    }

    fn received(to: &str, from: &str, transfer_id: Uuid, value: i64) -> RecordedEvent {
        recorded(
            to,
            EventKind::TransferReceived {
                transfer_id,
                from_wallet_id: wallet_id(from),
                amount: amount(value),
                description: None,
            },
        )
    }

    fn entry(account: Account, value: i64) -> Posting {
        Posting {
            account,
            amount: cents(value),
        }
    }

    fn wallet(raw: &str) -> Account {
        Account::Wallet(wallet_id(raw))
    }

    #[test]
    fn creation_with_an_opening_balance_comes_from_settlement() {
        let event = created("w-1", 10_000);
        let transaction = postings(&event);
        assert_eq!(transaction.transaction_type, TransactionType::WalletCreated);
        assert_eq!(transaction.id, event.event.event_id);
        assert_eq!(transaction.reference_id, event.event.event_id);
        assert_eq!(transaction.description, "Opening balance");
        assert_eq!(
            transaction.entries,
            vec![
                entry(wallet("w-1"), 10_000),
                entry(Account::ExternalSettlement, -10_000)
            ]
        );
    }

    #[test]
    fn changes_that_move_no_money_are_wallet_updates_without_entries() {
        let limit = Balance::limit("overdraftLimit", cents(2_500)).expect("limit");
        for (kind, text) in [
            (
                EventKind::OverdraftLimitSet {
                    overdraft_limit: limit,
                },
                "Overdraft limit set to 25.00",
            ),
            (EventKind::WalletFrozen, "Wallet frozen"),
            (EventKind::WalletUnfrozen, "Wallet unfrozen"),
            (EventKind::WalletClosed, "Wallet closed"),
        ] {
            let transaction = postings(&recorded("w-1", kind));
            assert_eq!(transaction.transaction_type, TransactionType::WalletUpdated);
            assert_eq!(transaction.description, text);
            assert!(transaction.entries.is_empty());
        }
    }

    #[test]
    fn creation_with_a_zero_opening_balance_has_no_entries() {
        let transaction = postings(&created("w-1", 0));
        assert_eq!(transaction.transaction_type, TransactionType::WalletCreated);
        assert!(transaction.entries.is_empty());
    }

    #[test]
    fn credit_and_debit_move_money_against_settlement() {
        let credit = recorded(
            "w-1",
            EventKind::WalletCredited {
                amount: amount(5_000),
                description: Some(Description::parse("Deposit").expect("description")),
            },
        );
        let transaction = postings(&credit);
        assert_eq!(transaction.transaction_type, TransactionType::Credit);
        assert_eq!(transaction.description, "Deposit");
        assert_eq!(
            transaction.entries,
            vec![
                entry(wallet("w-1"), 5_000),
                entry(Account::ExternalSettlement, -5_000)
            ]
        );

        let debit = recorded(
            "w-1",
            EventKind::WalletDebited {
                amount: amount(3_000),
                description: None,
            },
        );
        let transaction = postings(&debit);
        assert_eq!(transaction.transaction_type, TransactionType::Debit);
        assert_eq!(transaction.description, "Debit");
        assert_eq!(
            transaction.entries,
            vec![
                entry(wallet("w-1"), -3_000),
                entry(Account::ExternalSettlement, 3_000)
            ]
        );
    }

    #[test]
    fn transfer_halves_pass_through_clearing_and_share_the_transfer_id() {
        let transfer_id = Uuid::new_v4();
        let out = postings(&sent("w-1", "w-2", transfer_id, 2_500));
        let into = postings(&received("w-2", "w-1", transfer_id, 2_500));
        assert_eq!(out.transaction_type, TransactionType::TransferOut);
        assert_eq!(into.transaction_type, TransactionType::TransferIn);
        assert_eq!(out.reference_id, transfer_id);
        assert_eq!(into.reference_id, transfer_id);
        assert_eq!(out.description, "Transfer to w-2");
        assert_eq!(into.description, "Transfer from w-1");
        assert_eq!(
            out.entries,
            vec![
                entry(wallet("w-1"), -2_500),
                entry(Account::ClearingTransfers, 2_500)
            ]
        );
        assert_eq!(
            into.entries,
            vec![
                entry(wallet("w-2"), 2_500),
                entry(Account::ClearingTransfers, -2_500)
            ]
        );
    }

    #[test]
    fn a_reversal_takes_the_money_back_out_of_clearing_under_the_transfer_id() {
        let transfer_id = Uuid::new_v4();
        let out = postings(&sent("w-1", "w-2", transfer_id, 2_500));
        let back = postings(&recorded(
            "w-1",
            EventKind::TransferReversed {
                transfer_id,
                to_wallet_id: wallet_id("w-2"),
                amount: amount(2_500),
            },
        ));
        assert_eq!(back.transaction_type, TransactionType::TransferIn);
        assert_eq!(back.reference_id, transfer_id);
        assert_eq!(back.description, "Reversal of transfer to w-2");
        assert_eq!(
            back.entries,
            vec![
                entry(wallet("w-1"), 2_500),
                entry(Account::ClearingTransfers, -2_500)
            ]
        );
        let clearing: Decimal = out
            .entries
            .iter()
            .chain(&back.entries)
            .filter(|posting| posting.account == Account::ClearingTransfers)
            .map(|posting| posting.amount)
            .sum();
        assert!(clearing.is_zero());
    }

    #[test]
    fn a_reversed_capture_takes_the_money_back_out_of_clearing_under_the_hold() {
        let captured = postings(&hold_event(1, 2_000, 0, true));
        let reversed = recorded(
            "w-1",
            EventKind::HoldCaptureReversed {
                hold_id: hold("h-1"),
                to_wallet_id: wallet_id("w-2"),
                amount: amount(2_000),
            },
        );
        let back = postings(&reversed);
        assert_eq!(back.transaction_type, TransactionType::TransferIn);
        assert_eq!(back.reference_id, captured.reference_id);
        assert_eq!(
            back.description,
            "Reversal of the capture of hold h-1 to w-2"
        );
        assert_eq!(
            back.entries,
            vec![
                entry(wallet("w-1"), 2_000),
                entry(Account::ClearingTransfers, -2_000)
            ]
        );
        let clearing: Decimal = captured
            .entries
            .iter()
            .chain(&back.entries)
            .filter(|posting| posting.account == Account::ClearingTransfers)
            .map(|posting| posting.amount)
            .sum();
        assert!(clearing.is_zero());
        assert_eq!(
            clearing_reference(&reversed.event),
            Some(captured.reference_id)
        );
    }

    #[test]
    fn accounts_and_types_round_trip_through_text() {
        for account in [
            wallet("w-1"),
            Account::ExternalSettlement,
            Account::ClearingTransfers,
        ] {
            assert_eq!(account.to_string().parse::<Account>(), Ok(account));
        }
        assert_eq!(wallet("w_9").to_string(), "wallet:w_9");
        assert!("wallet:".parse::<Account>().is_err());
        assert!("cash".parse::<Account>().is_err());
        for transaction_type in TransactionType::ALL {
            assert_eq!(
                transaction_type.as_str().parse::<TransactionType>(),
                Ok(transaction_type)
            );
        }
        assert!("credit".parse::<TransactionType>().is_err());
    }

    fn hold(raw: &str) -> HoldId {
        HoldId::parse(raw).expect("hold id")
    }

    /// A hold event moving `value` cents: placed, captured (`released` cents
    /// back, to `w-2` when `to_wallet`), voided.
    fn hold_event(kind: u8, value: i64, released: i64, to_wallet: bool) -> RecordedEvent {
        let kind = match kind {
            0 => EventKind::HoldPlaced {
                hold_id: hold("h-1"),
                amount: amount(value),
                expires_at: None,
                description: None,
            },
            1 => EventKind::HoldCaptured {
                hold_id: hold("h-1"),
                amount: amount(value),
                released: Balance::opening("released", cents(released)).expect("released"),
                to_wallet_id: to_wallet.then(|| wallet_id("w-2")),
                description: None,
            },
            _ => EventKind::HoldVoided {
                hold_id: hold("h-1"),
                amount: amount(value),
            },
        };
        recorded("w-1", kind)
    }

    fn any_event() -> impl Strategy<Value = RecordedEvent> {
        let amount_max_cents = 100_000_000_000_000i64;
        (0..5u8, 0..=amount_max_cents, any::<u128>()).prop_map(|(kind, value, transfer)| {
            // Only a creation may move nothing.
            let value = if kind == 0 { value } else { value.max(1) };
            let transfer_id = Uuid::from_u128(transfer);
            match kind {
                0 => created("w-1", value),
                1 => recorded(
                    "w-1",
                    EventKind::WalletCredited {
                        amount: amount(value),
                        description: None,
                    },
                ),
                2 => recorded(
                    "w-1",
                    EventKind::WalletDebited {
                        amount: amount(value),
                        description: None,
                    },
                ),
                3 => sent("w-1", "w-2", transfer_id, value),
                _ => received("w-1", "w-2", transfer_id, value),
            }
        })
    }

    proptest! {
        #[test]
        fn every_event_posts_a_balanced_transaction_that_moves_the_wallet_by_its_signed_amount(
            recorded in any_event()
        ) {
            let transaction = postings(&recorded);
            prop_assert_eq!(transaction.sum(), Decimal::ZERO);
            let on_wallet: Decimal = transaction
                .entries
                .iter()
                .filter(|posting| posting.account.wallet_id() == Some(&recorded.event.wallet_id))
                .map(|posting| posting.amount)
                .sum();
            prop_assert_eq!(on_wallet, recorded.event.signed_amount());
            prop_assert!(transaction.entries.iter().all(|posting| !posting.amount.is_zero()));
        }

        #[test]
        fn a_hold_event_balances_and_moves_the_wallets_two_accounts_by_its_signed_amount(
            kind in 0..3u8,
            value in 1..=100_000_000_000_000i64,
            released in 0..=100_000_000_000_000i64,
            to_wallet in any::<bool>(),
        ) {
            let recorded = hold_event(kind, value, released, to_wallet);
            let transaction = postings(&recorded);
            prop_assert_eq!(transaction.sum(), Decimal::ZERO);
            let reference = hold_reference(&hold("h-1"));
            prop_assert_eq!(transaction.reference_id, reference);
            let sum_on = |wallet_only: bool| -> Decimal {
                transaction
                    .entries
                    .iter()
                    .filter(|posting| {
                        let account = if wallet_only {
                            posting.account.wallet_id()
                        } else {
                            posting.account.owning_wallet()
                        };
                        account == Some(&recorded.event.wallet_id)
                    })
                    .map(|posting| posting.amount)
                    .sum()
            };
            prop_assert_eq!(sum_on(false), recorded.event.signed_amount());
            let held: Decimal = sum_on(false) - sum_on(true);
            prop_assert_eq!(held, recorded.event.held_change());
            prop_assert!(transaction.entries.iter().all(|posting| !posting.amount.is_zero()));
        }

        #[test]
        fn both_halves_of_a_transfer_net_the_clearing_account_to_zero(
            value in 1..=100_000_000_000_000i64,
        ) {
            let transfer_id = Uuid::new_v4();
            let halves = [
                postings(&sent("w-1", "w-2", transfer_id, value)),
                postings(&received("w-2", "w-1", transfer_id, value)),
            ];
            let clearing: Decimal = halves
                .iter()
                .flat_map(|transaction| &transaction.entries)
                .filter(|posting| posting.account == Account::ClearingTransfers)
                .map(|posting| posting.amount)
                .sum();
            prop_assert_eq!(clearing, Decimal::ZERO);
        }
    }
}
