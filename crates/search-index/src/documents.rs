//! The documents as stored, their mappings, and the pure steps between events
//! and bulk lines. No I/O here.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use event_store::RecordedEvent;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;
use wallet_domain::{Balance, EventKind, HoldId, OwnerId, WalletId};

use crate::{IndexedWallet, SearchIndexError, Transaction};

/// Cents in one unit of the wallet currency (`MONEY_SCALE` = 2).
const CENTS_PER_UNIT: Decimal = Decimal::ONE_HUNDRED;

/// Fields added to the transactions mapping after its first version, put on
/// an index created before them (adding a field to a mapping is allowed).
pub(crate) fn transactions_mapping_additions() -> Value {
    json!({ "properties": {
        "principal": { "type": "keyword" },
        "holdId": { "type": "keyword" },
        "descriptionWords": description_words_mapping()
    } })
}

/// The field free text is matched on: the description's words as
/// `crate::words` folds them for both indexes, joined by spaces, split there
/// and nowhere else. Only which documents hold a word is kept.
fn description_words_mapping() -> Value {
    json!({ "type": "text", "analyzer": "whitespace", "index_options": "docs", "norms": false })
}

/// `dynamic: strict`: a field the mapping does not name is refused, not guessed.
///
/// Free text is matched on `descriptionWords` (see
/// [`description_words_mapping`]). `description` keeps its `words` analyzer
/// (runs of letters, digits and private-use characters, lower-cased) for the
/// documents indexed before `descriptionWords` existed.
pub(crate) fn transactions_mapping() -> Value {
    json!({
        "settings": {
            "number_of_shards": 1,
            "analysis": {
                "tokenizer": {
                    "words": { "type": "pattern", "pattern": "[^\\p{L}\\p{N}\\p{Co}]+" }
                },
                "analyzer": {
                    "words": { "type": "custom", "tokenizer": "words", "filter": ["lowercase"] }
                }
            }
        },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "id": { "type": "keyword" },
                "walletId": { "type": "keyword" },
                "ownerId": { "type": "keyword" },
                "type": { "type": "keyword" },
                // Exact text, returned as is; never searched.
                "amount": { "type": "keyword", "index": false, "doc_values": false },
                // What range filters compare: whole cents.
                "amountCents": { "type": "long" },
                "balanceAfter": { "type": "keyword", "index": false, "doc_values": false },
                "counterpartyWalletId": { "type": "keyword" },
                "transferId": { "type": "keyword" },
                "description": { "type": "text", "analyzer": "words" },
                "descriptionWords": description_words_mapping(),
                "occurredAt": { "type": "date" },
                "position": { "type": "long" },
                "streamVersion": { "type": "long" },
                "principal": { "type": "keyword" },
                "holdId": { "type": "keyword" }
            }
        }
    })
}

pub(crate) fn wallets_mapping() -> Value {
    json!({
        "settings": { "number_of_shards": 1 },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "id": { "type": "keyword" },
                "ownerId": { "type": "keyword" },
                "balance": { "type": "keyword", "index": false, "doc_values": false },
                "createdAt": { "type": "date" },
                "updatedAt": { "type": "date" },
                "version": { "type": "long" }
            }
        }
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TransactionSource {
    pub id: Uuid,
    pub wallet_id: String,
    pub owner_id: String,
    #[serde(rename = "type")]
    pub transaction_type: String,
    pub amount: String,
    pub amount_cents: i64,
    pub balance_after: String,
    pub counterparty_wallet_id: Option<String>,
    pub transfer_id: Option<Uuid>,
    pub description: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub position: u64,
    pub stream_version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The hold of a hold event; absent on every other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WalletSource {
    pub id: String,
    pub owner_id: String,
    pub balance: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

/// What the index must know of a wallet before it can write its documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WalletIdentity {
    pub owner_id: OwnerId,
    pub created_at: DateTime<Utc>,
}

/// `at` rounded up to the millisecond: for the lower bound of a time range.
/// Event times are kept to the millisecond (the index's `date` field, the
/// embedded index's `occurred_at_ms`), so a bound between two milliseconds
/// must not take in the one before it. `at` itself when rounding would
/// pass the last representable instant.
pub(crate) fn millisecond_ceiling(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_round_up(TimeDelta::milliseconds(1))
        .unwrap_or(at)
}

/// Whole cents of an amount, rounded up: for the lower bound of a range.
pub(crate) fn cents_ceiling(amount: Decimal) -> i64 {
    cents_rounded(amount, Decimal::ceil)
}

/// Whole cents of an amount, rounded down: for the upper bound of a range.
pub(crate) fn cents_floor(amount: Decimal) -> i64 {
    cents_rounded(amount, Decimal::floor)
}

fn cents_rounded(amount: Decimal, round: fn(&Decimal) -> Decimal) -> i64 {
    match amount.checked_mul(CENTS_PER_UNIT) {
        Some(cents) => round(&cents)
            .to_i64()
            .unwrap_or(if amount.is_sign_negative() {
                i64::MIN
            } else {
                i64::MAX
            }),
        None if amount.is_sign_negative() => i64::MIN,
        None => i64::MAX,
    }
}

fn exact_cents(value: Balance) -> Result<i64, SearchIndexError> {
    let cents = value
        .value()
        .checked_mul(CENTS_PER_UNIT)
        .filter(|cents| cents.fract().is_zero())
        .and_then(|cents| cents.to_i64());
    cents.ok_or_else(|| SearchIndexError::Corrupt(format!("amount {value} is not whole cents")))
}

/// Wallets of the batch whose `WalletCreated` is not in it: their owner must
/// be looked up in the wallets index.
pub(crate) fn wallets_to_look_up(events: &[RecordedEvent]) -> Vec<WalletId> {
    let created = created_in_batch(events);
    let mut wanted: Vec<WalletId> = events
        .iter()
        .map(|recorded| &recorded.event.wallet_id)
        .filter(|wallet_id| !created.contains_key(*wallet_id))
        .cloned()
        .collect();
    wanted.sort();
    wanted.dedup();
    wanted
}

fn created_in_batch(events: &[RecordedEvent]) -> HashMap<WalletId, WalletIdentity> {
    events
        .iter()
        .filter_map(|recorded| match &recorded.event.kind {
            EventKind::WalletCreated { owner_id, .. } => Some((
                recorded.event.wallet_id.clone(),
                WalletIdentity {
                    owner_id: owner_id.clone(),
                    created_at: recorded.event.occurred_at,
                },
            )),
            _ => None,
        })
        .collect()
}

/// A wallet document to write with its external version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WalletWrite {
    pub source: WalletSource,
    pub version: u64,
}

/// The documents one batch produces: a transaction per event and, per
/// wallet, the state after its newest event in the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchDocuments {
    pub transactions: Vec<TransactionSource>,
    pub wallets: Vec<WalletWrite>,
}

pub(crate) fn batch_documents(
    events: &[RecordedEvent],
    looked_up: &HashMap<WalletId, WalletIdentity>,
) -> Result<BatchDocuments, SearchIndexError> {
    let mut identities = looked_up.clone();
    // A WalletCreated in the batch is the authority on its owner.
    identities.extend(created_in_batch(events));

    let mut transactions = Vec::with_capacity(events.len());
    let mut newest: BTreeMap<WalletId, &RecordedEvent> = BTreeMap::new();
    for recorded in events {
        let wallet_id = &recorded.event.wallet_id;
        let identity = identities
            .get(wallet_id)
            .ok_or_else(|| SearchIndexError::UnknownWallet(wallet_id.clone()))?;
        transactions.push(transaction_source(recorded, &identity.owner_id)?);
        let entry = newest.entry(wallet_id.clone()).or_insert(recorded);
        if recorded.stream_version > entry.stream_version {
            *entry = recorded;
        }
    }

    let wallets = newest
        .into_iter()
        .filter_map(|(wallet_id, recorded)| {
            identities.get(&wallet_id).map(|identity| WalletWrite {
                source: WalletSource {
                    id: wallet_id.to_string(),
                    owner_id: identity.owner_id.to_string(),
                    balance: recorded.event.balance_after.to_string(),
                    created_at: identity.created_at,
                    updated_at: recorded.event.occurred_at,
                    version: recorded.stream_version,
                },
                version: recorded.stream_version,
            })
        })
        .collect();
    Ok(BatchDocuments {
        transactions,
        wallets,
    })
}

fn transaction_source(
    recorded: &RecordedEvent,
    owner_id: &OwnerId,
) -> Result<TransactionSource, SearchIndexError> {
    let event = &recorded.event;
    let counterparty = event.kind.counterparty().map(ToString::to_string);
    Ok(TransactionSource {
        id: event.event_id,
        wallet_id: event.wallet_id.to_string(),
        owner_id: owner_id.to_string(),
        transaction_type: event.type_name().to_owned(),
        amount: event.amount().to_string(),
        amount_cents: exact_cents(event.amount())?,
        balance_after: event.balance_after.to_string(),
        counterparty_wallet_id: counterparty,
        transfer_id: event.kind.transfer_id(),
        description: event
            .kind
            .description()
            .map(|description| description.as_str().to_owned()),
        occurred_at: event.occurred_at,
        position: recorded.position,
        stream_version: recorded.stream_version,
        principal: event.metadata.principal.clone(),
        hold_id: event.kind.hold_id().map(ToString::to_string),
    })
}

fn corrupt(what: &str, value: &str) -> SearchIndexError {
    SearchIndexError::Corrupt(format!("{what} {value:?}"))
}

fn parse_balance(what: &str, text: &str) -> Result<Balance, SearchIndexError> {
    Balance::from_stored(text).ok_or_else(|| corrupt(what, text))
}

fn parse_wallet_id(text: &str) -> Result<WalletId, SearchIndexError> {
    WalletId::parse(text).map_err(|_| corrupt("wallet id", text))
}

fn parse_owner_id(text: &str) -> Result<OwnerId, SearchIndexError> {
    OwnerId::parse(text).map_err(|_| corrupt("owner id", text))
}

impl TryFrom<TransactionSource> for Transaction {
    type Error = SearchIndexError;

    fn try_from(source: TransactionSource) -> Result<Self, Self::Error> {
        Ok(Transaction {
            id: source.id,
            wallet_id: parse_wallet_id(&source.wallet_id)?,
            owner_id: parse_owner_id(&source.owner_id)?,
            transaction_type: source.transaction_type,
            amount: parse_balance("amount", &source.amount)?,
            balance_after: parse_balance("balanceAfter", &source.balance_after)?,
            counterparty_wallet_id: source
                .counterparty_wallet_id
                .as_deref()
                .map(parse_wallet_id)
                .transpose()?,
            transfer_id: source.transfer_id,
            description: source.description,
            occurred_at: source.occurred_at,
            position: source.position,
            stream_version: source.stream_version,
            principal: source.principal,
            hold_id: source
                .hold_id
                .as_deref()
                .map(|text| HoldId::parse(text).map_err(|_| corrupt("hold id", text)))
                .transpose()?,
        })
    }
}

impl TryFrom<WalletSource> for IndexedWallet {
    type Error = SearchIndexError;

    fn try_from(source: WalletSource) -> Result<Self, Self::Error> {
        Ok(IndexedWallet {
            id: parse_wallet_id(&source.id)?,
            owner_id: parse_owner_id(&source.owner_id)?,
            balance: parse_balance("balance", &source.balance)?,
            created_at: source.created_at,
            updated_at: source.updated_at,
            version: source.version,
        })
    }
}

impl WalletSource {
    pub(crate) fn identity(&self) -> Result<(WalletId, WalletIdentity), SearchIndexError> {
        Ok((
            parse_wallet_id(&self.id)?,
            WalletIdentity {
                owner_id: parse_owner_id(&self.owner_id)?,
                created_at: self.created_at,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use wallet_domain::{Amount, EventMetadata, WalletEvent};

    use super::*;

    fn decimal(text: &str) -> Decimal {
        text.parse::<Decimal>().expect("test decimal")
    }

    fn balance(text: &str) -> Balance {
        Balance::try_from(decimal(text)).expect("test balance")
    }

    fn wallet(text: &str) -> WalletId {
        WalletId::parse(text).expect("test wallet id")
    }

    fn recorded(wallet_id: &str, version: u64, kind: EventKind, after: &str) -> RecordedEvent {
        RecordedEvent {
            position: version * 10,
            stream_version: version,
            event: WalletEvent {
                event_id: Uuid::now_v7(),
                wallet_id: wallet(wallet_id),
                occurred_at: Utc
                    .with_ymd_and_hms(2025, 1, 1, 0, 0, u32::try_from(version).unwrap_or(0))
                    .single()
                    .expect("valid instant"),
                balance_after: balance(after),
                metadata: EventMetadata::default(),
                kind,
            },
        }
    }

    fn created(wallet_id: &str, owner: &str, opening: &str) -> RecordedEvent {
        let owner_id = OwnerId::parse(owner).expect("test owner");
        let kind = EventKind::WalletCreated {
            owner_id,
            opening_balance: balance(opening),
            overdraft_limit: Balance::ZERO,
        };
        recorded(wallet_id, 1, kind, opening)
    }

    fn credited(wallet_id: &str, version: u64, amount: &str, after: &str) -> RecordedEvent {
        let amount = Amount::parse("amount", decimal(amount)).expect("test amount");
        let kind = EventKind::WalletCredited {
            amount,
            description: None,
        };
        recorded(wallet_id, version, kind, after)
    }

    #[test]
    fn cents_round_toward_the_inside_of_a_range() {
        assert_eq!(cents_ceiling(decimal("0.10")), 10);
        assert_eq!(cents_ceiling(decimal("0.101")), 11);
        assert_eq!(cents_floor(decimal("0.109")), 10);
        assert_eq!(
            cents_floor(decimal("1000000000000.00")),
            100_000_000_000_000
        );
        assert_eq!(cents_floor(decimal("-0.001")), -1);
        assert_eq!(cents_ceiling(Decimal::MAX), i64::MAX);
        assert_eq!(cents_floor(Decimal::MIN), i64::MIN);
    }

    #[test]
    fn a_batch_with_its_creation_needs_no_lookup() {
        let events = [
            created("w1", "o1", "10.00"),
            credited("w1", 2, "0.10", "10.10"),
        ];
        assert!(wallets_to_look_up(&events).is_empty());
        let documents = batch_documents(&events, &HashMap::new()).expect("documents");
        assert_eq!(documents.transactions.len(), 2);
        assert_eq!(documents.transactions[1].amount, "0.10");
        assert_eq!(documents.transactions[1].amount_cents, 10);
        assert_eq!(documents.transactions[1].owner_id, "o1");
        assert_eq!(documents.wallets.len(), 1);
        assert_eq!(documents.wallets[0].version, 2);
        assert_eq!(documents.wallets[0].source.balance, "10.10");
    }

    #[test]
    fn a_change_that_moves_no_money_is_a_transaction_of_zero_and_keeps_an_overdrawn_balance() {
        let events = [
            created("w1", "o1", "0.00"),
            recorded("w1", 2, EventKind::WalletFrozen, "-5.00"),
        ];
        let documents = batch_documents(&events, &HashMap::new()).expect("documents");
        let frozen = &documents.transactions[1];
        assert_eq!(frozen.transaction_type, "WalletFrozen");
        assert_eq!(frozen.amount, "0.00");
        assert_eq!(frozen.amount_cents, 0);
        assert_eq!(frozen.balance_after, "-5.00");
        let text = serde_json::to_string(frozen).expect("serializes");
        let source: TransactionSource = serde_json::from_str(&text).expect("deserializes");
        let transaction = Transaction::try_from(source).expect("readable");
        assert_eq!(transaction.balance_after.to_string(), "-5.00");
    }

    #[test]
    fn the_newest_event_of_a_wallet_sets_its_document_whatever_the_order() {
        let events = [
            created("w1", "o1", "0.00"),
            credited("w1", 3, "2.00", "3.00"),
            credited("w1", 2, "1.00", "1.00"),
        ];
        let documents = batch_documents(&events, &HashMap::new()).expect("documents");
        assert_eq!(documents.wallets[0].version, 3);
        assert_eq!(documents.wallets[0].source.balance, "3.00");
    }

    #[test]
    fn an_event_of_an_unknown_wallet_is_refused() {
        let events = [credited("w2", 2, "1.00", "1.00")];
        assert_eq!(wallets_to_look_up(&events), vec![wallet("w2")]);
        let refused = batch_documents(&events, &HashMap::new());
        assert!(matches!(refused, Err(SearchIndexError::UnknownWallet(id)) if id == wallet("w2")));
    }

    #[test]
    fn a_looked_up_owner_is_carried_onto_transactions() {
        let events = [credited("w2", 2, "1000000000000.00", "1000000000000.00")];
        let created_at = Utc::now();
        let looked_up = HashMap::from([(
            wallet("w2"),
            WalletIdentity {
                owner_id: OwnerId::parse("o2").expect("owner"),
                created_at,
            },
        )]);
        let documents = batch_documents(&events, &looked_up).expect("documents");
        assert_eq!(documents.transactions[0].owner_id, "o2");
        assert_eq!(documents.transactions[0].amount, "1000000000000.00");
        assert_eq!(documents.transactions[0].amount_cents, 100_000_000_000_000);
        assert_eq!(documents.wallets[0].source.created_at, created_at);
    }

    #[test]
    fn stored_text_comes_back_as_the_exact_decimal() {
        let events = [created("w1", "o1", "0.10")];
        let documents = batch_documents(&events, &HashMap::new()).expect("documents");
        let text = serde_json::to_string(&documents.transactions[0]).expect("serializes");
        let source: TransactionSource = serde_json::from_str(&text).expect("deserializes");
        let transaction = Transaction::try_from(source).expect("readable");
        assert_eq!(transaction.amount.to_string(), "0.10");
        let json = serde_json::to_string(&transaction).expect("serializes");
        assert!(json.contains("\"amount\":0.10"), "{json}");
    }
}
