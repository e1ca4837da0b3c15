//! The double-entry ledger.
//!
//! Every wallet event is posted once as a ledger transaction whose entries sum
//! to exactly zero ([`posting`]); the ledger can then be queried per wallet,
//! per operation and as a whole, and verified. The [`Ledger`] trait is the
//! port; [`EmbeddedLedger`] keeps it in its own SQLite file and
//! [`PostgresLedger`] in PostgreSQL tables; both take events from the relay as
//! an [`event_sink::EventSink`]. The two share the posting rules and every
//! rule about what is written and what a query means ([`posting`] and the
//! private `stored` module); they differ only in how rows are written and read.
//!
//! Error policy: storage failures are [`LedgerError::Storage`] (SQLite) or
//! [`LedgerError::Postgres`] and keep their cause; a row that cannot be read
//! back marks `ledger.db` damaged (`Storage` of
//! [`embedded_sqlite::SqliteError::Damaged`]: 503 naming the file, the
//! projection waits) and is [`LedgerError::Corrupt`] on PostgreSQL; a
//! transaction that would not balance is refused as
//! [`LedgerError::Unbalanced`] before anything is written.
//!
//! Both stores implement [`Ledger`] and [`event_sink::EventSink`],
//! which both name a `checkpoint` method: with both traits in scope, call
//! `Ledger::checkpoint(&ledger)`.

#[cfg(feature = "conformance")]
pub mod conformance;
mod embedded;
mod postgres;
pub mod posting;
mod stored;
mod totals;
pub mod verification;

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, DurationRound, Utc};
use event_store::RecordedEvent;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wallet_domain::WalletId;

pub use embedded::{EmbeddedLedger, DATABASE_FILE as EMBEDDED_FILE};
pub use postgres::{PostgresLedger, POST_CHUNK_EVENTS_MAX};
pub use posting::{postings, Account, LedgerTransaction, Posting, TransactionType};
pub use totals::TOTALS_CHECKPOINT_TRANSACTIONS;

/// The name both ledgers give themselves as an event sink.
const SINK_NAME: &str = "ledger";

/// Entries one query returns when the caller names no limit.
pub const ENTRIES_LIMIT_DEFAULT: u32 = 50;
/// Entries one query returns at most, whatever the caller asks.
pub const ENTRIES_LIMIT_MAX: u32 = 500;
/// Deepest `offset` a query may start at, in entries: deeper pages are
/// reached with the keyset cursor [`EntryFilter::after`], whose cost does
/// not grow with depth.
pub const ENTRIES_OFFSET_MAX: u64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger storage: {0}")]
    Storage(#[from] embedded_sqlite::SqliteError),
    #[error("ledger storage (PostgreSQL): {0}")]
    Postgres(#[source] sqlx::Error),
    /// A PostgreSQL row that does not read back as the ledger writes it.
    #[error("ledger data is corrupt: {0}")]
    Corrupt(String),
    #[error("ledger transaction {0} does not balance; nothing was posted")]
    Unbalanced(Uuid),
    #[error("a ledger sum left the range of exact decimals")]
    Overflow,
    #[error("event position {0} is beyond what the ledger stores")]
    PositionOutOfRange(u64),
    /// A consumer's stored offsets were not the expected ones: nothing was posted.
    #[error(transparent)]
    OffsetsMoved(#[from] event_sink::OffsetsMoved),
}

impl event_sink::Transience for LedgerError {
    /// Whether the same post may succeed later (storage away, busy or timed
    /// out): a consumer retries it without end. False for what would fail
    /// again (corrupt or unbalanced data, a constraint, a value out of range).
    fn is_transient(&self) -> bool {
        match self {
            // A constraint refuses the same events again: parked, as on
            // PostgreSQL (h142 F3: retried without end, `/health` ok).
            LedgerError::Storage(error) => !error.refuses_the_input(),
            LedgerError::Postgres(error) => postgres_support::is_transient(error),
            LedgerError::Corrupt(_)
            | LedgerError::Unbalanced(_)
            | LedgerError::Overflow
            | LedgerError::PositionOutOfRange(_)
            | LedgerError::OffsetsMoved(_) => false,
        }
    }
}

/// What one [`Ledger::post`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PostOutcome {
    /// Events posted now.
    pub posted: usize,
    /// Events posted before (or twice in the batch), left as they were.
    pub skipped: usize,
}

/// The first microsecond `at` bounds from below, for a store that keeps
/// times to the microsecond (both do: SQLite as an integer, PostgreSQL's
/// `timestamptz`): a bound between two microseconds must not take in the
/// one before it, as cutting its nanoseconds off would. `at` itself when
/// rounding would pass the last representable instant.
pub(crate) fn microsecond_ceiling(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_round_up(chrono::TimeDelta::microseconds(1))
        .unwrap_or(at)
}

/// Filters and paging shared by the entry queries. Dates bound the time the
/// event occurred, both ends included. Results are in ledger (global event
/// log) order, so a page stays a page while new entries arrive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryFilter {
    pub transaction_type: Option<TransactionType>,
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    /// [`ENTRIES_LIMIT_DEFAULT`] when absent, never more than [`ENTRIES_LIMIT_MAX`].
    pub limit: Option<u32>,
    /// Entries to skip; at most [`ENTRIES_OFFSET_MAX`] (the HTTP layer refuses
    /// more, the stores treat more as past the end).
    pub offset: Option<u64>,
    /// Keyset cursor: only entries after this one in ledger order (newest
    /// first, a transaction's lines in order), as the last entry of the
    /// previous page names it. An entry the ledger does not hold selects
    /// nothing.
    pub after: Option<EntryId>,
}

impl EntryFilter {
    /// The limit the query applies.
    pub fn effective_limit(&self) -> u32 {
        self.limit
            .unwrap_or(ENTRIES_LIMIT_DEFAULT)
            .min(ENTRIES_LIMIT_MAX)
    }
}

/// The entries on one wallet's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletEntriesQuery {
    pub wallet_id: WalletId,
    pub filter: EntryFilter,
}

/// Which list of entries a keyset cursor pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryList<'a> {
    /// Every entry of the ledger ([`Ledger::transactions`] without a wallet).
    Ledger,
    /// Every entry of one wallet's transactions, the other accounts' sides
    /// too ([`Ledger::transactions`] with `wallet_id`).
    WalletTransactions(&'a WalletId),
    /// The entries on one wallet's two accounts, its own and its held
    /// sub-account ([`Ledger::wallet_entries`]).
    WalletAccounts(&'a WalletId),
}

impl<'a> EntryList<'a> {
    /// The wallet whose transactions the list is of, if one.
    fn wallet(self) -> Option<&'a WalletId> {
        match self {
            Self::Ledger => None,
            Self::WalletTransactions(wallet_id) | Self::WalletAccounts(wallet_id) => {
                Some(wallet_id)
            }
        }
    }

    /// The accounts the list shows, when not every account of its
    /// transactions: `[wallet, held]` names.
    fn accounts(self) -> Option<[String; 2]> {
        match self {
            Self::WalletAccounts(wallet_id) => Some(posting::Account::names_of_wallet(wallet_id)),
            Self::Ledger | Self::WalletTransactions(_) => None,
        }
    }
}

/// Entries of every account, optionally only of the transactions of one wallet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionsQuery {
    pub wallet_id: Option<WalletId>,
    pub filter: EntryFilter,
}

/// Whether an entry increases (`CREDIT`) or decreases (`DEBIT`) its account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntryType {
    Credit,
    Debit,
}

/// One entry as the API shows it: an absolute amount and its direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    /// `<transaction id>:<line>`: the same for the same event however often
    /// the ledger is rebuilt, in whichever store.
    pub id: String,
    pub transaction_id: Uuid,
    pub reference_id: Uuid,
    /// The wallet whose event the transaction records.
    pub wallet_id: WalletId,
    pub account: Account,
    pub entry_type: EntryType,
    pub transaction_type: TransactionType,
    #[serde(with = "money_json")]
    pub amount: Decimal,
    pub description: String,
    /// When the event occurred.
    #[serde(with = "timestamp_millis")]
    pub created_at: DateTime<Utc>,
}

impl LedgerEntry {
    /// The amount with its sign from the account's view.
    pub fn signed_amount(&self) -> Decimal {
        match self.entry_type {
            EntryType::Credit => self.amount,
            EntryType::Debit => -self.amount,
        }
    }
}

/// The id of the `line`th (from 1) entry of a transaction.
pub fn entry_id(transaction_id: Uuid, line: u32) -> String {
    EntryId {
        transaction_id,
        line,
    }
    .to_string()
}

/// An entry's identity, `<transaction id>:<line>` on the wire (the `id` of
/// [`LedgerEntry`]): a hyphenated UUID, a colon, and the line from 1 in at
/// most 9 digits without a leading zero ([`ENTRY_ID_PATTERN`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct EntryId {
    pub transaction_id: Uuid,
    pub line: u32,
}

/// The text form of an [`EntryId`], as a regular expression.
pub const ENTRY_ID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}:[1-9][0-9]{0,8}$";

/// Digits of a line number in an entry id, at most.
const ENTRY_LINE_DIGITS_MAX: usize = 9;
/// Characters of a hyphenated UUID.
const HYPHENATED_UUID_LENGTH: usize = 36;

/// Text that is not an entry id ([`ENTRY_ID_PATTERN`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an entry id (<transaction uuid>:<line from 1>): {0:?}")]
pub struct InvalidEntryId(pub String);

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.transaction_id, self.line)
    }
}

impl std::str::FromStr for EntryId {
    type Err = InvalidEntryId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidEntryId(text.to_owned());
        let (transaction, line) = text.split_once(':').ok_or_else(invalid)?;
        let line = Some(line)
            .filter(|line| (1..=ENTRY_LINE_DIGITS_MAX).contains(&line.len()))
            .filter(|line| !line.starts_with('0'))
            .filter(|line| line.bytes().all(|byte| byte.is_ascii_digit()))
            .and_then(|line| line.parse::<u32>().ok())
            .ok_or_else(invalid)?;
        let transaction_id = Some(transaction)
            .filter(|transaction| transaction.len() == HYPHENATED_UUID_LENGTH)
            .and_then(|transaction| Uuid::try_parse(transaction).ok())
            .ok_or_else(invalid)?;
        Ok(EntryId {
            transaction_id,
            line,
        })
    }
}

impl TryFrom<String> for EntryId {
    type Error = InvalidEntryId;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

#[cfg(test)]
mod entry_id_tests {
    use super::*;

    #[test]
    fn an_entry_id_reads_back_what_it_prints_and_nothing_else() {
        let id = EntryId {
            transaction_id: Uuid::new_v4(),
            line: 2,
        };
        assert_eq!(id.to_string().parse::<EntryId>(), Ok(id));
        let regex = regex::Regex::new(ENTRY_ID_PATTERN).expect("the pattern compiles");
        let pattern = |text: &str| regex.is_match(text);
        for refused in [
            "",
            ":1",
            "not-a-uuid:1",
            "00000000-0000-0000-0000-000000000000:0",
            "00000000-0000-0000-0000-000000000000:01",
            "00000000-0000-0000-0000-000000000000:1234567890",
            "00000000000000000000000000000000:1",
            "{00000000-0000-0000-0000-000000000000}:1",
            "00000000-0000-0000-0000-000000000000:+1",
            "00000000-0000-0000-0000-000000000000",
        ] {
            assert!(refused.parse::<EntryId>().is_err(), "{refused:?}");
            assert!(!pattern(refused), "{refused:?}");
        }
        assert!(pattern("00000000-0000-0000-0000-000000000000:123456789"));
        assert!("00000000-0000-0000-0000-000000000000:123456789"
            .parse::<EntryId>()
            .is_ok());
    }
}

/// Totals of one wallet's account. A wallet the ledger has not seen has zeros.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WalletSummary {
    pub wallet_id: WalletId,
    /// The sum of the positive entries.
    #[serde(with = "money_json")]
    pub total_credits: Decimal,
    /// The sum of the negative entries, as a positive number.
    #[serde(with = "money_json")]
    pub total_debits: Decimal,
    /// `total_credits - total_debits`.
    #[serde(with = "money_json")]
    pub balance: Decimal,
    pub entry_count: u64,
    /// The newest entry on either of the wallet's accounts among those
    /// counted (`None` when there is none): of its newest transaction, the
    /// first such line.
    pub newest_entry: Option<LedgerEntry>,
}

/// The result of checking the whole ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerVerification {
    /// No unbalanced transaction and no transfer missing a half.
    pub ok: bool,
    pub events_posted: u64,
    pub transactions_checked: u64,
    /// Transactions whose entries do not sum to zero.
    pub unbalanced_transactions: Vec<Uuid>,
    /// The ledger balance of every wallet created or moved in the ledger:
    /// its account and its held sub-account together.
    #[serde(serialize_with = "exact_decimal_map")]
    pub wallet_balances: BTreeMap<WalletId, Decimal>,
    /// The held sub-account of every wallet that ever had a hold: what its
    /// pending holds reserve.
    #[serde(serialize_with = "exact_decimal_map")]
    pub held_balances: BTreeMap<WalletId, Decimal>,
    /// The balance of `external:settlement`: minus the money that entered the
    /// system and has not left it, so it and the wallets and clearing sum to zero.
    #[serde(with = "money_json")]
    pub settlement_balance: Decimal,
    /// Money of transfers sent and not yet received.
    #[serde(with = "money_json")]
    pub clearing_balance: Decimal,
    /// Transfers whose clearing entries do not net to zero: one half is missing.
    pub transfers_missing_half: Vec<Uuid>,
    /// The ledger's checkpoint in the same snapshot: the furthest log
    /// position posted (in-process, every position up to it is posted).
    pub checkpoint: u64,
    /// What the ledger has posted of each wallet's events: where the event
    /// store is read to compare that wallet's balance (see [`verification`]).
    /// Not in the JSON: it is one line per wallet, as the balances are.
    #[serde(skip)]
    pub wallets_posted: BTreeMap<WalletId, PostedThrough>,
}

/// What the ledger has posted of one wallet's events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PostedThrough {
    /// The log position of the last one.
    pub position: u64,
    /// How many (one transaction each).
    pub events: u64,
}

#[async_trait]
pub trait Ledger: Send + Sync {
    /// Posts each event once: an event already posted (by event id, recorded
    /// in the same transaction as its entries) is skipped. When `checkpoint`
    /// is given it is stored in the same transaction; it never moves back.
    async fn post(
        &self,
        events: &[RecordedEvent],
        checkpoint: Option<u64>,
    ) -> Result<PostOutcome, LedgerError>;

    /// [`Ledger::post`] that also moves a Kafka consumer's `offsets` in the
    /// same transaction; [`LedgerError::OffsetsMoved`], posting nothing, when
    /// a partition's stored offset is not its expected one. The default, for
    /// a ledger that keeps no offsets (see [`Ledger::consumer_offsets`]), is
    /// [`Ledger::post`].
    async fn post_consumed(
        &self,
        events: &[RecordedEvent],
        checkpoint: Option<u64>,
        _offsets: &event_sink::ConsumerOffsets,
    ) -> Result<PostOutcome, LedgerError> {
        self.post(events, checkpoint).await
    }

    /// The next offsets stored for consumer `group` on `topic`, by
    /// partition, or `None` when this ledger keeps none (the default).
    async fn consumer_offsets(
        &self,
        _group: &str,
        _topic: &str,
    ) -> Result<Option<event_sink::StoredOffsets>, LedgerError> {
        Ok(None)
    }

    /// The stored checkpoint (0 when none).
    async fn checkpoint(&self) -> Result<u64, LedgerError>;

    /// The entries on the wallet's two accounts, `wallet:<id>` and its held
    /// sub-account `held:<id>` (a hold placed or released shows both sides,
    /// a capture its posting out of `held:<id>`), filtered and paged.
    async fn wallet_entries(
        &self,
        query: WalletEntriesQuery,
    ) -> Result<Vec<LedgerEntry>, LedgerError>;

    /// Every entry, on every account, of the transactions of one transfer
    /// (its transfer id) or one operation (its event id). An id that is not a
    /// UUID matches nothing.
    async fn reference_entries(&self, reference_id: &str) -> Result<Vec<LedgerEntry>, LedgerError>;

    /// Whether `list` shows the entry `entry` (its transaction's id, the id
    /// of the event it posts, and its line there): what a keyset cursor
    /// ([`EntryFilter::after`]) must name to select anything. Scoped to the
    /// list a query pages, so a cursor cannot tell whether another wallet's
    /// entry exists.
    async fn holds_entry(&self, entry: EntryId, list: EntryList<'_>) -> Result<bool, LedgerError>;

    /// Entries of every account, filtered and paged.
    async fn transactions(&self, query: TransactionsQuery)
        -> Result<Vec<LedgerEntry>, LedgerError>;

    /// Totals of the wallet's account over the transactions that occurred
    /// at or before `at` (all of them when `None`).
    async fn wallet_summary(
        &self,
        wallet_id: &WalletId,
        at: Option<DateTime<Utc>>,
    ) -> Result<WalletSummary, LedgerError>;

    /// Checks the whole ledger; reads it all.
    async fn verify(&self) -> Result<LedgerVerification, LedgerError>;
}

/// Amounts as exact JSON numbers at the money scale (`0.00`, `11.00`), never
/// `0` beside `11.00`; read back in any scale. For `#[serde(with = "...")]`.
pub mod money_json {
    use rust_decimal::Decimal;
    use serde::{Deserializer, Serializer};
    use wallet_domain::money::MONEY_SCALE;

    /// Writes `value` with `MONEY_SCALE` decimal places: zeros are added to
    /// a value of fewer, and a value of more (never posted by the rules, but
    /// a verification may report a corrupted row) is written as it is, never
    /// rounded.
    pub fn serialize<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
        let mut scaled = *value;
        if scaled.scale() < MONEY_SCALE {
            scaled.rescale(MONEY_SCALE);
        }
        rust_decimal::serde::arbitrary_precision::serialize(&scaled, serializer)
    }

    /// Reads an exact JSON number of any scale.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        rust_decimal::serde::arbitrary_precision::deserialize(deserializer)
    }
}

mod timestamp_millis {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        time: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        DateTime::<Utc>::deserialize(deserializer)
    }
}

fn exact_decimal_map<S: serde::Serializer>(
    map: &BTreeMap<WalletId, Decimal>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    struct Exact<'a>(&'a Decimal);
    impl Serialize for Exact<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            money_json::serialize(self.0, serializer)
        }
    }
    serializer.collect_map(
        map.iter()
            .map(|(wallet_id, value)| (wallet_id, Exact(value))),
    )
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use chrono::TimeZone;

    use super::*;

    #[test]
    fn an_entry_serializes_as_the_api_transaction_item() {
        let transaction_id = Uuid::new_v4();
        let entry = LedgerEntry {
            id: entry_id(transaction_id, 1),
            transaction_id,
            reference_id: transaction_id,
            wallet_id: WalletId::parse("wallet-123").expect("wallet"),
            account: Account::Wallet(WalletId::parse("wallet-123").expect("wallet")),
            entry_type: EntryType::Debit,
            transaction_type: TransactionType::TransferOut,
            amount: Decimal::from_str("0.10").expect("decimal"),
            description: "Payment".into(),
            created_at: Utc
                .with_ymd_and_hms(2025, 10, 23, 10, 15, 0)
                .single()
                .expect("time"),
        };
        let json = serde_json::to_string(&entry).expect("serialize");
        let expected = format!(
            "{{\"id\":\"{transaction_id}:1\",\"transactionId\":\"{transaction_id}\",\
             \"referenceId\":\"{transaction_id}\",\"walletId\":\"wallet-123\",\
             \"account\":\"wallet:wallet-123\",\"entryType\":\"DEBIT\",\
             \"transactionType\":\"TRANSFER_OUT\",\"amount\":0.10,\"description\":\"Payment\",\
             \"createdAt\":\"2025-10-23T10:15:00.000Z\"}}"
        );
        assert_eq!(json, expected);
        let back: LedgerEntry = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, entry);
        assert_eq!(back.signed_amount(), Decimal::from_str("-0.10").expect("d"));
    }

    #[test]
    fn verification_balances_are_exact_numbers() {
        let verification = LedgerVerification {
            ok: true,
            events_posted: 1,
            transactions_checked: 1,
            unbalanced_transactions: Vec::new(),
            wallet_balances: BTreeMap::from([(
                WalletId::parse("w-1").expect("wallet"),
                Decimal::from_str("100.00").expect("decimal"),
            )]),
            held_balances: BTreeMap::new(),
            settlement_balance: Decimal::from_str("-100.00").expect("decimal"),
            clearing_balance: Decimal::from_str("0.00").expect("decimal"),
            transfers_missing_half: Vec::new(),
            checkpoint: 7,
            wallets_posted: BTreeMap::from([(
                WalletId::parse("w-1").expect("wallet"),
                PostedThrough {
                    position: 7,
                    events: 1,
                },
            )]),
        };
        let json = serde_json::to_string(&verification).expect("serialize");
        assert!(
            json.contains("\"walletBalances\":{\"w-1\":100.00}"),
            "{json}"
        );
        assert!(json.contains("\"settlementBalance\":-100.00"), "{json}");
        assert!(json.contains("\"clearingBalance\":0.00"), "{json}");
        assert!(json.contains("\"checkpoint\":7"), "{json}");
        assert!(!json.contains("walletsPosted"), "{json}");
    }

    #[test]
    fn a_balance_mismatch_prints_money_with_two_places_and_never_rounds() {
        let mismatch = verification::BalanceMismatch {
            wallet_id: WalletId::parse("w-1").expect("wallet"),
            position: 2,
            ledger_balance: Decimal::from_str("16.001").expect("decimal"),
            event_sourced_balance: Decimal::from_str("15.00").expect("decimal"),
            ledger_held_balance: Decimal::default(),
            event_sourced_held_balance: Decimal::from_str("0.00").expect("decimal"),
        };
        let json = serde_json::to_string(&mismatch).expect("serialize");
        assert!(json.contains("\"ledgerBalance\":16.001,"), "{json}");
        assert!(json.contains("\"ledgerHeldBalance\":0.00,"), "{json}");
        assert!(json.contains("\"eventSourcedHeldBalance\":0.00}"), "{json}");
    }

    #[test]
    fn the_limit_defaults_and_is_capped() {
        let mut filter = EntryFilter::default();
        assert_eq!(filter.effective_limit(), ENTRIES_LIMIT_DEFAULT);
        filter.limit = Some(10_000);
        assert_eq!(filter.effective_limit(), ENTRIES_LIMIT_MAX);
        filter.limit = Some(7);
        assert_eq!(filter.effective_limit(), 7);
    }
}
