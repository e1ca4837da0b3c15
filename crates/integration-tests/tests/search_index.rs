//! The search index (`search-index` crate) against a real Elasticsearch or OpenSearch:
//! idempotent indexing, wallets that never move back in time, every query filter, and
//! amounts that come back exact.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use event_store::RecordedEvent;
use integration_tests::{require_env, unique_name};
use rust_decimal::Decimal;
use search_index::{
    ElasticsearchIndex, SearchIndex, SearchIndexError, TransactionPage, TransactionSearch,
    TRANSACTIONS_LIMIT_MAX,
};
use uuid::Uuid;
use wallet_domain::{
    Amount, Balance, Description, EventKind, EventMetadata, OwnerId, WalletEvent, WalletId,
};

const WALLET_A: &str = "wallet-a";
const WALLET_B: &str = "wallet-b";
const OWNER_A: &str = "owner-a";
const OWNER_B: &str = "owner-b";

fn decimal(text: &str) -> Decimal {
    Decimal::from_str(text).expect("test decimal")
}

fn balance(text: &str) -> Balance {
    Balance::try_from(decimal(text)).expect("test balance")
}

fn amount(text: &str) -> Amount {
    Amount::parse("amount", decimal(text)).expect("test amount")
}

fn description(text: &str) -> Option<Description> {
    Some(Description::parse(text).expect("test description"))
}

fn wallet(id: &str) -> WalletId {
    WalletId::parse(id).expect("test wallet id")
}

fn owner(id: &str) -> OwnerId {
    OwnerId::parse(id).expect("test owner id")
}

/// Noon on the given day of January 2025.
fn day(day_of_month: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, day_of_month, 12, 0, 0)
        .single()
        .expect("a valid instant")
}

/// Wallet ids unique to one test run (so reruns against one server stay apart).
struct Run {
    a: WalletId,
    b: WalletId,
}

impl Run {
    fn new() -> Self {
        Self {
            a: wallet(&unique_name(WALLET_A)),
            b: wallet(&unique_name(WALLET_B)),
        }
    }
}

struct EventAt {
    position: u64,
    stream_version: u64,
    wallet_id: WalletId,
    occurred_at: DateTime<Utc>,
    amount: Balance,
    balance_after: Balance,
    kind: EventKind,
}

fn recorded(at: EventAt) -> RecordedEvent {
    RecordedEvent {
        position: at.position,
        stream_version: at.stream_version,
        event: WalletEvent {
            event_id: Uuid::now_v7(),
            wallet_id: at.wallet_id,
            occurred_at: at.occurred_at,
            amount: at.amount,
            balance_after: at.balance_after,
            metadata: EventMetadata::default(),
            kind: at.kind,
        },
    }
}

/// A: created empty, credited 1,000,000,000,000.00, debited 0.10, sends 250.00 to B.
/// B: created with 0.10, receives 250.00.
fn sequence(run: &Run) -> Vec<RecordedEvent> {
    let transfer_id = Uuid::now_v7();
    vec![
        recorded(EventAt {
            position: 1,
            stream_version: 1,
            wallet_id: run.a.clone(),
            occurred_at: day(1),
            amount: balance("0.00"),
            balance_after: balance("0.00"),
            kind: EventKind::WalletCreated {
                owner_id: owner(OWNER_A),
            },
        }),
        recorded(EventAt {
            position: 2,
            stream_version: 1,
            wallet_id: run.b.clone(),
            occurred_at: day(2),
            amount: balance("0.10"),
            balance_after: balance("0.10"),
            kind: EventKind::WalletCreated {
                owner_id: owner(OWNER_B),
            },
        }),
        recorded(EventAt {
            position: 3,
            stream_version: 2,
            wallet_id: run.a.clone(),
            occurred_at: day(3),
            amount: balance("1000000000000.00"),
            balance_after: balance("1000000000000.00"),
            kind: EventKind::WalletCredited {
                amount: amount("1000000000000.00"),
                description: description("Salary payment"),
            },
        }),
        recorded(EventAt {
            position: 4,
            stream_version: 3,
            wallet_id: run.a.clone(),
            occurred_at: day(4),
            amount: balance("0.10"),
            balance_after: balance("999999999999.90"),
            kind: EventKind::WalletDebited {
                amount: amount("0.10"),
                description: description("Coffee beans"),
            },
        }),
        recorded(EventAt {
            position: 5,
            stream_version: 4,
            wallet_id: run.a.clone(),
            occurred_at: day(5),
            amount: balance("250.00"),
            balance_after: balance("999999999749.90"),
            kind: EventKind::TransferSent {
                transfer_id,
                to_wallet_id: run.b.clone(),
                amount: amount("250.00"),
                description: description("Rent for March"),
            },
        }),
        recorded(EventAt {
            position: 6,
            stream_version: 2,
            wallet_id: run.b.clone(),
            occurred_at: day(5),
            amount: balance("250.00"),
            balance_after: balance("250.10"),
            kind: EventKind::TransferReceived {
                transfer_id,
                from_wallet_id: run.a.clone(),
                amount: amount("250.00"),
                description: description("Rent for March"),
            },
        }),
    ]
}

/// A fresh pair of indices, or `None` when no server is configured.
async fn fresh_index() -> Option<ElasticsearchIndex> {
    let url = require_env("ELASTICSEARCH_URL")?;
    let prefix = unique_name("wallex-it").to_lowercase();
    let index = ElasticsearchIndex::connect(&url, &prefix).expect("a valid URL and prefix");
    index.ensure_indices().await.expect("indices are created");
    // A second start finds them there and is fine with it.
    index
        .ensure_indices()
        .await
        .expect("ensure_indices is idempotent");
    Some(index)
}

async fn search(index: &ElasticsearchIndex, search: TransactionSearch) -> TransactionPage {
    index
        .search_transactions(&search)
        .await
        .expect("the search succeeds")
}

fn types(page: &TransactionPage) -> Vec<&str> {
    page.items
        .iter()
        .map(|item| item.transaction_type.as_str())
        .collect()
}

fn amounts(page: &TransactionPage) -> Vec<String> {
    page.items
        .iter()
        .map(|item| item.amount.to_string())
        .collect()
}

#[tokio::test]
async fn a_wallet_history_comes_back_newest_first_with_exact_amounts() {
    let Some(index) = fresh_index().await else {
        return;
    };
    let run = Run::new();
    let outcome = index
        .index_batch(&sequence(&run))
        .await
        .expect("the batch is indexed");
    assert_eq!(outcome.transactions, 6);
    assert_eq!(outcome.wallets_updated, 2);
    index.refresh().await.expect("refresh");

    let history = index
        .wallet_transactions(&run.a, None, 0)
        .await
        .expect("the history query succeeds");
    assert_eq!(history.total, 4);
    assert_eq!(
        types(&history),
        [
            "TransferSent",
            "WalletDebited",
            "WalletCredited",
            "WalletCreated"
        ]
    );
    assert_eq!(
        amounts(&history),
        ["250.00", "0.10", "1000000000000.00", "0.00"]
    );
    let sent = &history.items[0];
    assert_eq!(sent.balance_after.to_string(), "999999999749.90");
    assert_eq!(sent.counterparty_wallet_id.as_ref(), Some(&run.b));
    assert!(sent.transfer_id.is_some());
    assert_eq!(sent.description.as_deref(), Some("Rent for March"));
    assert_eq!(sent.owner_id, owner(OWNER_A));
    assert_eq!((sent.position, sent.stream_version), (5, 4));
    assert_eq!(sent.occurred_at, day(5));
    // The JSON a handler returns carries the exact digits as numbers.
    let json = serde_json::to_string(&history.items[2]).expect("serializes");
    assert!(json.contains("\"amount\":1000000000000.00"), "{json}");

    let second = index
        .wallet_transactions(&run.a, Some(1), 1)
        .await
        .expect("a page query succeeds");
    assert_eq!(second.total, 4);
    assert_eq!(types(&second), ["WalletDebited"]);

    let a = index
        .wallet(&run.a)
        .await
        .expect("wallet query")
        .expect("A is indexed");
    assert_eq!(
        (a.version, a.balance.to_string().as_str()),
        (4, "999999999749.90")
    );
    assert_eq!(a.owner_id, owner(OWNER_A));
    assert_eq!((a.created_at, a.updated_at), (day(1), day(5)));
    let b = index
        .wallet(&run.b)
        .await
        .expect("wallet query")
        .expect("B is indexed");
    assert_eq!((b.version, b.balance.to_string().as_str()), (2, "250.10"));

    index
        .delete_indices()
        .await
        .expect("the run's indices are deleted");
}

#[tokio::test]
async fn every_search_filter_narrows_the_result() {
    let Some(index) = fresh_index().await else {
        return;
    };
    let run = Run::new();
    index.index_batch(&sequence(&run)).await.expect("indexed");
    index.refresh().await.expect("refresh");

    let all = search(&index, TransactionSearch::default()).await;
    assert_eq!(all.total, 6);
    assert_eq!(all.items[0].position, 6, "newest first");

    let owned_by_b = search(
        &index,
        TransactionSearch {
            owner_id: Some(owner(OWNER_B)),
            ..TransactionSearch::default()
        },
    )
    .await;
    assert_eq!(types(&owned_by_b), ["TransferReceived", "WalletCreated"]);

    let of_a = search(
        &index,
        TransactionSearch {
            wallet_id: Some(run.a.clone()),
            ..TransactionSearch::default()
        },
    )
    .await;
    assert_eq!(of_a.total, 4);

    let in_dates = search(
        &index,
        TransactionSearch {
            from: Some(day(2)),
            to: Some(day(4)),
            ..TransactionSearch::default()
        },
    )
    .await;
    assert_eq!(
        types(&in_dates),
        ["WalletDebited", "WalletCredited", "WalletCreated"]
    );

    let ten_cents = search(
        &index,
        TransactionSearch {
            min_amount: Some(decimal("0.10")),
            max_amount: Some(decimal("0.10")),
            ..TransactionSearch::default()
        },
    )
    .await;
    assert_eq!(types(&ten_cents), ["WalletDebited", "WalletCreated"]);
    assert_eq!(amounts(&ten_cents), ["0.10", "0.10"]);

    let largest = search(
        &index,
        TransactionSearch {
            min_amount: Some(decimal("999999999999.99")),
            ..TransactionSearch::default()
        },
    )
    .await;
    assert_eq!(amounts(&largest), ["1000000000000.00"]);

    let up_to_250 = search(
        &index,
        TransactionSearch {
            max_amount: Some(decimal("250")),
            wallet_id: Some(run.a.clone()),
            ..TransactionSearch::default()
        },
    )
    .await;
    assert_eq!(
        types(&up_to_250),
        ["TransferSent", "WalletDebited", "WalletCreated"]
    );

    let coffee = search(
        &index,
        TransactionSearch {
            q: Some("coffee".into()),
            ..TransactionSearch::default()
        },
    )
    .await;
    assert_eq!(types(&coffee), ["WalletDebited"]);

    let rent_of_b = search(
        &index,
        TransactionSearch {
            owner_id: Some(owner(OWNER_B)),
            q: Some("rent march".into()),
            ..TransactionSearch::default()
        },
    )
    .await;
    assert_eq!(types(&rent_of_b), ["TransferReceived"]);

    let paged = search(
        &index,
        TransactionSearch {
            limit: Some(2),
            offset: 2,
            ..TransactionSearch::default()
        },
    )
    .await;
    assert_eq!((paged.total, paged.items.len()), (6, 2));
    assert_eq!(paged.items[0].position, 4);

    let too_many = index
        .search_transactions(&TransactionSearch {
            limit: Some(TRANSACTIONS_LIMIT_MAX + 1),
            ..TransactionSearch::default()
        })
        .await;
    assert!(
        matches!(too_many, Err(SearchIndexError::InvalidQuery(_))),
        "{too_many:?}"
    );

    index
        .delete_indices()
        .await
        .expect("the run's indices are deleted");
}

#[tokio::test]
async fn redelivered_and_late_events_change_nothing() {
    let Some(index) = fresh_index().await else {
        return;
    };
    let run = Run::new();
    let events = sequence(&run);
    index.index_batch(&events).await.expect("indexed");
    index.refresh().await.expect("refresh");
    let before = search(&index, TransactionSearch::default()).await;
    let wallet_before = index.wallet(&run.a).await.expect("wallet query");

    let again = index
        .index_batch(&events)
        .await
        .expect("redelivery is accepted");
    assert_eq!(again.transactions, 6);
    assert_eq!((again.wallets_updated, again.wallets_already_newer), (0, 2));
    // An older event of A (its credit, version 2) after the newer ones.
    let late = index
        .index_batch(&events[2..3])
        .await
        .expect("a late event is accepted");
    assert_eq!((late.wallets_updated, late.wallets_already_newer), (0, 1));
    index.refresh().await.expect("refresh");

    let after = search(&index, TransactionSearch::default()).await;
    assert_eq!(after, before, "same documents, same count");
    let wallet_after = index.wallet(&run.a).await.expect("wallet query");
    assert_eq!(wallet_after, wallet_before);
    assert_eq!(wallet_after.map(|wallet| wallet.version), Some(4));

    index
        .delete_indices()
        .await
        .expect("the run's indices are deleted");
}

#[tokio::test]
async fn an_event_of_a_wallet_never_created_is_refused_for_a_retry() {
    let Some(index) = fresh_index().await else {
        return;
    };
    let run = Run::new();
    let credit_only = &sequence(&run)[2..3];
    let refused = index.index_batch(credit_only).await;
    assert!(
        matches!(&refused, Err(SearchIndexError::UnknownWallet(id)) if *id == run.a),
        "{refused:?}"
    );
    index.refresh().await.expect("refresh");
    let nothing = search(&index, TransactionSearch::default()).await;
    assert_eq!(nothing.total, 0, "nothing of a refused batch is written");

    index
        .delete_indices()
        .await
        .expect("the run's indices are deleted");
}
