//! Scenarios every [`SearchIndex`] must pass, whatever stores it: the tests of
//! each backend run them all (`search_index_conformance_tests!`), each against
//! a fresh, empty index whose writes are searchable when `index_batch`
//! returns (`ElasticsearchIndex::refreshing_on_write`).
//!
//! Built only with the `conformance` feature; test code, so it panics on a
//! failed expectation.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use event_store::RecordedEvent;
use rust_decimal::Decimal;
use uuid::Uuid;
use wallet_domain::{
    Amount, Balance, Description, EventKind, EventMetadata, HoldId, OwnerId, WalletEvent, WalletId,
};

use crate::{
    SearchIndex, SearchIndexError, TransactionPage, TransactionSearch, BULK_EVENTS_MAX,
    QUERY_TEXT_LENGTH_MAX, RESULT_WINDOW_MAX, TRANSACTIONS_LIMIT_MAX,
};

/// One scenario, ready to run against a fresh index.
pub type Scenario = fn(Arc<dyn SearchIndex>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

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

/// Who caused every event of the scenarios (the `sub` of a token).
const PRINCIPAL: &str = "gateway-7";

struct EventAt {
    position: u64,
    stream_version: u64,
    wallet_id: &'static str,
    occurred_at: DateTime<Utc>,
    balance_after: Balance,
    kind: EventKind,
}

fn recorded(at: EventAt) -> RecordedEvent {
    RecordedEvent {
        position: at.position,
        stream_version: at.stream_version,
        event: WalletEvent {
            event_id: Uuid::now_v7(),
            wallet_id: wallet(at.wallet_id),
            occurred_at: at.occurred_at,
            balance_after: at.balance_after,
            metadata: EventMetadata {
                principal: Some(PRINCIPAL.into()),
                ..EventMetadata::default()
            },
            kind: at.kind,
        },
    }
}

/// The first event of a wallet's stream, with its opening balance.
fn created(
    position: u64,
    wallet_id: &'static str,
    owner_id: &str,
    occurred_at: DateTime<Utc>,
    opening: &str,
) -> RecordedEvent {
    recorded(EventAt {
        position,
        stream_version: 1,
        wallet_id,
        occurred_at,
        balance_after: balance(opening),
        kind: EventKind::WalletCreated {
            owner_id: owner(owner_id),
            opening_balance: balance(opening),
            overdraft_limit: Balance::ZERO,
        },
    })
}

/// Positions 1 to 6. A: created empty, credited 1,000,000,000,000.00,
/// debited 0.10, sends 250.00 to B. B: created with 0.10, receives 250.00.
pub fn history_of_two_wallets() -> Vec<RecordedEvent> {
    let transfer_id = Uuid::now_v7();
    vec![
        created(1, WALLET_A, OWNER_A, day(1), "0.00"),
        created(2, WALLET_B, OWNER_B, day(2), "0.10"),
        recorded(EventAt {
            position: 3,
            stream_version: 2,
            wallet_id: WALLET_A,
            occurred_at: day(3),
            balance_after: balance("1000000000000.00"),
            kind: EventKind::WalletCredited {
                amount: amount("1000000000000.00"),
                description: description("Salary payment"),
            },
        }),
        recorded(EventAt {
            position: 4,
            stream_version: 3,
            wallet_id: WALLET_A,
            occurred_at: day(4),
            balance_after: balance("999999999999.90"),
            kind: EventKind::WalletDebited {
                amount: amount("0.10"),
                description: description("Coffee beans, Ethiopian"),
            },
        }),
        recorded(EventAt {
            position: 5,
            stream_version: 4,
            wallet_id: WALLET_A,
            occurred_at: day(5),
            balance_after: balance("999999999749.90"),
            kind: EventKind::TransferSent {
                transfer_id,
                to_wallet_id: wallet(WALLET_B),
                amount: amount("250.00"),
                description: description("Rent for March"),
            },
        }),
        recorded(EventAt {
            position: 6,
            stream_version: 2,
            wallet_id: WALLET_B,
            occurred_at: day(5),
            balance_after: balance("250.10"),
            kind: EventKind::TransferReceived {
                transfer_id,
                from_wallet_id: wallet(WALLET_A),
                amount: amount("250.00"),
                description: description("Rent for March"),
            },
        }),
    ]
}

async fn search(index: &dyn SearchIndex, search: TransactionSearch) -> TransactionPage {
    index
        .search_transactions(&search)
        .await
        .expect("the search succeeds")
}

/// The types of a page that matches `search`, newest first.
async fn types_of(index: &dyn SearchIndex, search: TransactionSearch) -> Vec<String> {
    let page = self::search(index, search).await;
    types(&page).into_iter().map(str::to_owned).collect()
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

fn text(q: &str) -> TransactionSearch {
    TransactionSearch {
        q: Some(q.to_owned()),
        ..TransactionSearch::default()
    }
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(result: Result<T, SearchIndexError>) {
    assert!(
        matches!(result, Err(SearchIndexError::InvalidQuery(_))),
        "{result:?}"
    );
}

pub async fn a_wallet_history_comes_back_newest_first_with_exact_amounts(
    index: Arc<dyn SearchIndex>,
) {
    index.ensure_indices().await.expect("ensure_indices");
    let outcome = index
        .index_batch(&history_of_two_wallets())
        .await
        .expect("the batch is indexed");
    assert_eq!(outcome.transactions, 6);
    assert_eq!(outcome.wallets_updated, 2);

    let history = index
        .wallet_transactions(&wallet(WALLET_A), None, None, 0)
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
    assert_eq!(sent.counterparty_wallet_id, Some(wallet(WALLET_B)));
    assert!(sent.transfer_id.is_some());
    assert_eq!(sent.description.as_deref(), Some("Rent for March"));
    assert_eq!(sent.owner_id, owner(OWNER_A));
    assert_eq!((sent.position, sent.stream_version), (5, 4));
    assert_eq!(sent.principal.as_deref(), Some(PRINCIPAL));
    assert_eq!(sent.occurred_at, day(5));
    // The JSON a handler returns carries the exact digits as numbers.
    let json = serde_json::to_string(&history.items[2]).expect("serializes");
    assert!(json.contains("\"amount\":1000000000000.00"), "{json}");

    let second = index
        .wallet_transactions(&wallet(WALLET_A), None, Some(1), 1)
        .await
        .expect("a page query succeeds");
    assert_eq!(second.total, 4);
    assert_eq!(types(&second), ["WalletDebited"]);
    let past_the_end = index
        .wallet_transactions(&wallet(WALLET_A), None, Some(10), 4)
        .await
        .expect("a page past the end succeeds");
    assert_eq!((past_the_end.total, past_the_end.items.len()), (4, 0));
    let unknown = index
        .wallet_transactions(&wallet("wallet-unknown"), None, None, 0)
        .await
        .expect("an unknown wallet has an empty history");
    assert_eq!(unknown.total, 0);

    let a = index
        .wallet(&wallet(WALLET_A))
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
        .wallet(&wallet(WALLET_B))
        .await
        .expect("wallet query")
        .expect("B is indexed");
    assert_eq!((b.version, b.balance.to_string().as_str()), (2, "250.10"));
    assert_eq!(
        index
            .wallet(&wallet("wallet-unknown"))
            .await
            .expect("wallet query"),
        None
    );
}

pub async fn every_search_filter_narrows_the_result(index: Arc<dyn SearchIndex>) {
    let index = index.as_ref();
    index
        .index_batch(&history_of_two_wallets())
        .await
        .expect("indexed");

    let all = search(index, TransactionSearch::default()).await;
    assert_eq!(all.total, 6);
    let positions: Vec<u64> = all.items.iter().map(|item| item.position).collect();
    assert_eq!(positions, [6, 5, 4, 3, 2, 1], "newest first");

    let owned_by_b = TransactionSearch {
        owner_id: Some(owner(OWNER_B)),
        ..TransactionSearch::default()
    };
    assert_eq!(
        types_of(index, owned_by_b).await,
        ["TransferReceived", "WalletCreated"]
    );

    let of_a = TransactionSearch {
        wallet_id: Some(wallet(WALLET_A)),
        ..TransactionSearch::default()
    };
    assert_eq!(search(index, of_a).await.total, 4);

    // Both ends included.
    let in_dates = TransactionSearch {
        from: Some(day(2)),
        to: Some(day(4)),
        ..TransactionSearch::default()
    };
    assert_eq!(
        types_of(index, in_dates).await,
        ["WalletDebited", "WalletCredited", "WalletCreated"]
    );
    let after_the_last = TransactionSearch {
        from: Some(day(5) + Duration::seconds(1)),
        ..TransactionSearch::default()
    };
    assert_eq!(search(index, after_the_last).await.total, 0);
    // Times are kept to the millisecond: a bound between two milliseconds
    // takes in neither the one before a lower bound nor the one after an
    // upper bound, and an event's own millisecond is inside both.
    let within_its_millisecond = |from: DateTime<Utc>, to: DateTime<Utc>| TransactionSearch {
        from: Some(from),
        to: Some(to),
        ..TransactionSearch::default()
    };
    let micros = Duration::microseconds;
    for (from, to, found) in [
        (day(4) + micros(100), day(4) + micros(900), 0),
        (day(4) - micros(900), day(4) - micros(100), 0),
        (day(4) - micros(900), day(4) + micros(900), 1),
        (day(4), day(4), 1),
    ] {
        assert_eq!(
            search(index, within_its_millisecond(from, to)).await.total,
            found,
            "from {from} to {to}"
        );
    }

    let ten_cents = search(
        index,
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
        index,
        TransactionSearch {
            min_amount: Some(decimal("999999999999.99")),
            ..TransactionSearch::default()
        },
    )
    .await;
    assert_eq!(amounts(&largest), ["1000000000000.00"]);

    let up_to_250 = TransactionSearch {
        max_amount: Some(decimal("250")),
        wallet_id: Some(wallet(WALLET_A)),
        ..TransactionSearch::default()
    };
    assert_eq!(
        types_of(index, up_to_250).await,
        ["TransferSent", "WalletDebited", "WalletCreated"]
    );
    // A bound between two cents excludes what lies beyond it.
    let below_ten_cents = TransactionSearch {
        max_amount: Some(decimal("0.099")),
        ..TransactionSearch::default()
    };
    assert_eq!(types_of(index, below_ten_cents).await, ["WalletCreated"]);

    let paged = search(
        index,
        TransactionSearch {
            limit: Some(2),
            offset: 2,
            ..TransactionSearch::default()
        },
    )
    .await;
    assert_eq!((paged.total, paged.items.len()), (6, 2));
    assert_eq!(paged.items[0].position, 4);
}

pub async fn free_text_matches_every_word_of_a_description_or_a_whole_id(
    index: Arc<dyn SearchIndex>,
) {
    let index = index.as_ref();
    let events = history_of_two_wallets();
    index.index_batch(&events).await.expect("indexed");

    assert_eq!(types_of(index, text("coffee")).await, ["WalletDebited"]);
    // Case and punctuation do not matter; every word must occur.
    assert_eq!(
        types_of(index, text("ETHIOPIAN, coffee!")).await,
        ["WalletDebited"]
    );
    assert!(types_of(index, text("coffee tea")).await.is_empty());
    // Query syntax is text like any other.
    assert!(types_of(index, text("coffee OR rent")).await.is_empty());
    assert_eq!(types_of(index, text("\"coffee")).await, ["WalletDebited"]);
    let rent_of_b = TransactionSearch {
        owner_id: Some(owner(OWNER_B)),
        ..text("rent march")
    };
    assert_eq!(types_of(index, rent_of_b).await, ["TransferReceived"]);

    let transfer_id = events[4]
        .event
        .kind
        .transfer_id()
        .expect("a transfer has an id");
    assert_eq!(
        types_of(index, text(&transfer_id.to_string())).await,
        ["TransferReceived", "TransferSent"]
    );
    // A server-made id as written elsewhere: upper case, or without hyphens.
    for spelling in [
        transfer_id.to_string().to_uppercase(),
        transfer_id.simple().to_string(),
    ] {
        assert_eq!(
            types_of(index, text(&spelling)).await,
            ["TransferReceived", "TransferSent"],
            "{spelling}"
        );
    }
    let event_id = events[2].event.event_id.to_string();
    assert_eq!(types_of(index, text(&event_id)).await, ["WalletCredited"]);
    assert_eq!(
        types_of(index, text(&event_id.to_uppercase())).await,
        ["WalletCredited"]
    );
    // B's own events, and A's transfer to it.
    assert_eq!(
        types_of(index, text(WALLET_B)).await,
        ["TransferReceived", "TransferSent", "WalletCreated"]
    );
    // Blank text filters nothing.
    assert_eq!(search(index, text("   ")).await.total, 6);
}

/// Credits of 1.00 to wallet A, one per description, at positions 2 onwards
/// (after A's creation at 1), so the newest is the last description.
fn credits_described(descriptions: &[&str]) -> Vec<RecordedEvent> {
    let mut events = vec![created(1, WALLET_A, OWNER_A, day(1), "0.00")];
    for (position, text) in (2..).zip(descriptions) {
        let after = Decimal::from(position - 1);
        events.push(recorded(EventAt {
            position,
            stream_version: position,
            wallet_id: WALLET_A,
            occurred_at: day(2),
            balance_after: Balance::try_from(after).expect("a balance"),
            kind: EventKind::WalletCredited {
                amount: amount("1.00"),
                description: description(text),
            },
        }));
    }
    events
}

/// The descriptions (not the types) a text finds, newest first.
async fn descriptions_found(index: &dyn SearchIndex, q: &str) -> Vec<String> {
    search(index, text(q))
        .await
        .items
        .into_iter()
        .filter_map(|item| item.description)
        .collect()
}

const MULTI_LEG: &str = "agent fee for the multi leg payout";
const MULTI_AGENT: &str = "multi-agent settlement";
const OR_NEVER: &str = "pay now or never";
const UNICODE: &str = "Café Zürich, 3 naïve crêpes";
const NOT_A_DRILL: &str = "this is not a drill (really)";

const GREEK: &str = "ΣΟΦΟΣ payout";
const TURKISH: &str = "İstanbul office";
const COMBINING: &str = "cafe\u{301} bill";
const EMOJI: &str = "pay🎉day";
const GEORGIAN: &str = "ᲡᲐᲥᲐᲠᲗᲕᲔᲚᲝ rent";
const LIGATURE: &str = "ﬁnance €5fee";
const MARKED: &str = "q\u{303} alone, STRAẞE";
const PLAIN: &str = "q plain, Iğdır pay\u{AD}ment";
const SELECTED: &str = "\u{2764}\u{FE0F}coffee J\u{30C}ORDAN";
const SYMBOLS: &str = "Acme™ widget 1\u{FE0F}\u{20E3}first pay\u{200E}roll kı\u{301}";

/// The words are folded by one function for both indexes (`crate::words`),
/// so the scripts where their own analyzers differed find the same rows.
pub async fn free_text_folds_every_script_alike(index: Arc<dyn SearchIndex>) {
    let index = index.as_ref();
    // A word longer than one token of Elasticsearch's analyzers, and one a
    // query may hold whole.
    let longest = format!("{}yyyyyyyyyy", "x".repeat(255));
    let long = "z".repeat(150);
    let events = credits_described(&[
        GREEK, TURKISH, COMBINING, EMOJI, GEORGIAN, LIGATURE, MARKED, PLAIN, SELECTED, SYMBOLS,
        &longest, &long,
    ]);
    index.index_batch(&events).await.expect("indexed");
    let found = |q: &'static str| descriptions_found(index, q);
    for q in ["σοφος", "Σοφος", "ΣΟΦΟΣ", "σοφοσ"] {
        assert_eq!(found(q).await, [GREEK], "{q}");
    }
    for q in ["istanbul", "İSTANBUL", "ISTANBUL"] {
        assert_eq!(found(q).await, [TURKISH], "{q}");
    }
    for q in ["café", "CAFE\u{301}"] {
        assert_eq!(found(q).await, [COMBINING], "{q}");
    }
    assert!(found("cafe").await.is_empty());
    for q in ["pay day", "day", "pay🎉"] {
        assert_eq!(found(q).await, [EMOJI], "{q}");
    }
    assert!(found("payday").await.is_empty());
    assert_eq!(found("საქართველო").await, [GEORGIAN]);
    for q in ["finance", "ﬁnance", "5fee", "€5fee"] {
        assert_eq!(found(q).await, [LIGATURE], "{q}");
    }
    // A mark with no precomposed letter stays in its word.
    assert_eq!(found("Q\u{303}").await, [MARKED]);
    assert_eq!(found("q").await, [PLAIN]);
    for q in ["strasse", "Straße", "IĞDIR", "payment"] {
        assert_eq!(found(q).await.len(), 1, "{q}");
    }
    // A variation selector neither joins an emoji to a word nor is one; a
    // capital with no precomposed form finds the precomposed small letter.
    for q in ["coffee", "ǰordan"] {
        assert_eq!(found(q).await, [SELECTED], "{q}");
    }
    assert!(found("\u{2764}\u{FE0F}").await.is_empty());
    // A symbol separates words before NFKC spells it (`™` as `TM`), a keycap
    // is its digit, a bidirectional mark is nothing, `ı́` is `í`.
    for q in ["acme", "first", "1", "payroll", "k\u{ed}"] {
        assert_eq!(found(q).await, [SYMBOLS], "{q}");
    }
    assert!(found("acmetm").await.is_empty());
    assert!(found("yyyyyyyyyy").await.is_empty());
    assert_eq!(descriptions_found(index, &long).await, [long]);
}

pub async fn free_text_is_every_word_in_any_order_and_never_an_operator(
    index: Arc<dyn SearchIndex>,
) {
    let index = index.as_ref();
    let events = credits_described(&[MULTI_LEG, MULTI_AGENT, OR_NEVER, UNICODE, NOT_A_DRILL]);
    index.index_batch(&events).await.expect("indexed");
    let found = |q: &'static str| descriptions_found(index, q);

    // Hyphens, commas, quotes, colons, carets and parentheses separate words;
    // the words may come in any order and need not be next to each other.
    for q in [
        "multi-agent",
        "agent multi",
        "\"multi agent\"",
        "multi*",
        "(multi) agent",
        "agent:multi",
    ] {
        assert_eq!(found(q).await, [MULTI_AGENT, MULTI_LEG], "{q}");
    }
    for q in ["payout,agent", "payout^agent", "PAYOUT;Agent!"] {
        assert_eq!(found(q).await, [MULTI_LEG], "{q}");
    }
    // `*` is no prefix: only whole words match.
    assert!(found("mult*").await.is_empty());
    // NEAR, OR, AND and NOT are words like any other: each must occur.
    assert!(found("NEAR(multi payout)").await.is_empty());
    assert!(found("multi OR nothing").await.is_empty());
    assert!(found("pay AND now").await.is_empty());
    assert_eq!(found("never OR pay").await, [OR_NEVER]);
    assert_eq!(found("NOT drill").await, [NOT_A_DRILL]);
    assert_eq!(found("really)").await, [NOT_A_DRILL]);
    // Unicode words: case folds, accents stay.
    assert_eq!(found("zürich CAFÉ").await, [UNICODE]);
    assert_eq!(found("naïve-crêpes 3").await, [UNICODE]);
    assert!(found("cafe").await.is_empty());
    // Text with no word at all matches no description (and no id).
    for q in ["*", "\"\"", "-- () ^", "NEAR(", "\""] {
        assert!(found(q).await.is_empty(), "{q}");
    }
    // An id still matches whole and exact, with its hyphens.
    assert_eq!(search(index, text(WALLET_A)).await.total, 6);
}

pub async fn invalid_queries_are_refused(index: Arc<dyn SearchIndex>) {
    let index = index.as_ref();
    index
        .index_batch(&history_of_two_wallets())
        .await
        .expect("indexed");

    assert_invalid(
        index
            .search_transactions(&TransactionSearch {
                limit: Some(TRANSACTIONS_LIMIT_MAX + 1),
                ..TransactionSearch::default()
            })
            .await,
    );
    assert_invalid(
        index
            .wallet_transactions(&wallet(WALLET_A), None, Some(1), RESULT_WINDOW_MAX)
            .await,
    );
    assert_invalid(
        index
            .search_transactions(&TransactionSearch {
                from: Some(day(3)),
                to: Some(day(2)),
                ..TransactionSearch::default()
            })
            .await,
    );
    assert_invalid(
        index
            .search_transactions(&TransactionSearch {
                min_amount: Some(decimal("2")),
                max_amount: Some(decimal("1")),
                ..TransactionSearch::default()
            })
            .await,
    );
    assert_invalid(
        index
            .search_transactions(&text(&"x".repeat(QUERY_TEXT_LENGTH_MAX + 1)))
            .await,
    );
}

pub async fn redelivered_and_late_events_change_nothing(index: Arc<dyn SearchIndex>) {
    let events = history_of_two_wallets();
    index.index_batch(&events).await.expect("indexed");
    let before = search(index.as_ref(), TransactionSearch::default()).await;
    let wallet_before = index.wallet(&wallet(WALLET_A)).await.expect("wallet query");

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

    let after = search(index.as_ref(), TransactionSearch::default()).await;
    assert_eq!(after, before, "same documents, same count");
    assert_eq!(search(index.as_ref(), text("coffee")).await.total, 1);
    let wallet_after = index.wallet(&wallet(WALLET_A)).await.expect("wallet query");
    assert_eq!(wallet_after, wallet_before);
    assert_eq!(wallet_after.map(|wallet| wallet.version), Some(4));
}

pub async fn an_event_of_a_wallet_never_created_is_refused_for_a_retry(
    index: Arc<dyn SearchIndex>,
) {
    let credit_only = &history_of_two_wallets()[2..3];
    let refused = index.index_batch(credit_only).await;
    assert!(
        matches!(&refused, Err(SearchIndexError::UnknownWallet(id)) if *id == wallet(WALLET_A)),
        "{refused:?}"
    );
    let nothing = search(index.as_ref(), TransactionSearch::default()).await;
    assert_eq!(nothing.total, 0, "nothing of a refused batch is written");
}

pub async fn a_later_batch_finds_the_owner_of_an_earlier_one(index: Arc<dyn SearchIndex>) {
    let events = history_of_two_wallets();
    index.index_batch(&events[..2]).await.expect("creations");
    let outcome = index.index_batch(&events[2..]).await.expect("the rest");
    assert_eq!((outcome.transactions, outcome.wallets_updated), (4, 2));

    let of_owner_a = TransactionSearch {
        owner_id: Some(owner(OWNER_A)),
        ..TransactionSearch::default()
    };
    assert_eq!(search(index.as_ref(), of_owner_a).await.total, 4);
    let b = index
        .wallet(&wallet(WALLET_B))
        .await
        .expect("wallet query")
        .expect("B is indexed");
    assert_eq!((b.created_at, b.updated_at), (day(2), day(5)));
}

/// More events than one bulk request carries, of one wallet, in one call.
pub async fn a_batch_larger_than_one_bulk_request_is_indexed_whole(index: Arc<dyn SearchIndex>) {
    let count = BULK_EVENTS_MAX + 1;
    let mut events = vec![created(1, WALLET_A, OWNER_A, day(1), "0.00")];
    for version in 2..=count as u64 {
        let cents = i64::try_from(version - 1).expect("small count");
        events.push(recorded(EventAt {
            position: version,
            stream_version: version,
            wallet_id: WALLET_A,
            occurred_at: day(1) + Duration::seconds(cents),
            balance_after: Balance::try_from(Decimal::new(cents, 2)).expect("balance"),
            kind: EventKind::WalletCredited {
                amount: amount("0.01"),
                description: None,
            },
        }));
    }
    let outcome = index.index_batch(&events).await.expect("indexed");
    assert_eq!(outcome.transactions, count);

    let newest = index
        .wallet_transactions(&wallet(WALLET_A), None, Some(1), 0)
        .await
        .expect("history");
    assert_eq!(newest.total, count as u64);
    assert_eq!(newest.items[0].position, count as u64);
    let a = index
        .wallet(&wallet(WALLET_A))
        .await
        .expect("wallet query")
        .expect("A is indexed");
    assert_eq!(a.version, count as u64);
    let credits = i64::try_from(count - 1).expect("small count");
    assert_eq!(
        a.balance,
        Balance::try_from(Decimal::new(credits, 2)).expect("balance")
    );
}

/// Hold events are transactions of their own types: a hold placed shows the
/// amount held and the balance unchanged, a capture the amount taken and
/// the balance after it; each carries its hold's id, which a search finds.
pub async fn hold_events_are_transactions_in_the_history(index: Arc<dyn SearchIndex>) {
    index.ensure_indices().await.expect("ensure_indices");
    let hold_id = HoldId::parse("hold-7").expect("hold id");
    let event = |position, kind, after: &str| {
        recorded(EventAt {
            position,
            stream_version: position,
            wallet_id: WALLET_A,
            occurred_at: day(1) + Duration::minutes(i64::try_from(position).expect("small")),
            balance_after: balance(after),
            kind,
        })
    };
    let events = vec![
        created(1, WALLET_A, OWNER_A, day(1), "100.00"),
        event(
            2,
            EventKind::HoldPlaced {
                hold_id: hold_id.clone(),
                amount: amount("25.00"),
                expires_at: None,
                description: description("Hotel"),
            },
            "100.00",
        ),
        event(
            3,
            EventKind::HoldCaptured {
                hold_id: hold_id.clone(),
                amount: amount("10.00"),
                released: balance("15.00"),
                to_wallet_id: None,
                description: None,
            },
            "90.00",
        ),
    ];
    index.index_batch(&events).await.expect("indexed");
    let history = index
        .wallet_transactions(&wallet(WALLET_A), None, None, 0)
        .await
        .expect("history");
    assert_eq!(
        types(&history),
        ["HoldCaptured", "HoldPlaced", "WalletCreated"]
    );
    assert_eq!(amounts(&history), ["10.00", "25.00", "100.00"]);
    assert_eq!(history.items[1].balance_after.to_string(), "100.00");
    assert_eq!(history.items[0].balance_after.to_string(), "90.00");
    assert_eq!(history.items[1].description.as_deref(), Some("Hotel"));
    let holds: Vec<_> = history
        .items
        .iter()
        .map(|item| item.hold_id.clone())
        .collect();
    assert_eq!(holds, [Some(hold_id.clone()), Some(hold_id), None]);
    // The hold's id is a whole id a search finds exactly.
    assert_eq!(
        types_of(&*index, text("hold-7")).await,
        ["HoldCaptured", "HoldPlaced"]
    );
}

/// A hold's id is the client's own, case and all: a search for it finds its
/// own hold's transactions, not those of a hold whose id is another
/// spelling of the same UUID (while a server-made id in any spelling finds
/// its transactions, above).
pub async fn a_client_chosen_id_is_found_as_written_only(index: Arc<dyn SearchIndex>) {
    index.ensure_indices().await.expect("ensure_indices");
    const UPPER: &str = "ABCDEF00112233445566778899AABBCC";
    const LOWER: &str = "abcdef00-1122-3344-5566-778899aabbcc";
    let placed = |position, wallet_id, hold_id: &str| {
        recorded(EventAt {
            position,
            stream_version: 2,
            wallet_id,
            occurred_at: day(2),
            balance_after: balance("100.00"),
            kind: EventKind::HoldPlaced {
                hold_id: HoldId::parse(hold_id).expect("hold id"),
                amount: amount("1.00"),
                expires_at: None,
                description: None,
            },
        })
    };
    let events = vec![
        created(1, WALLET_A, OWNER_A, day(1), "100.00"),
        created(2, WALLET_B, OWNER_B, day(1), "100.00"),
        placed(3, WALLET_A, UPPER),
        placed(4, WALLET_B, LOWER),
    ];
    index.index_batch(&events).await.expect("indexed");
    for (hold_id, wallet_id) in [(UPPER, WALLET_A), (LOWER, WALLET_B)] {
        let found = search(&*index, text(hold_id)).await;
        let wallets: Vec<&str> = found
            .items
            .iter()
            .map(|item| item.wallet_id.as_str())
            .collect();
        assert_eq!(wallets, [wallet_id], "{hold_id}");
    }
}

/// A wallet's history walked by its keyset cursor (`before_position` = the
/// last position of the previous page) is its whole history, newest first,
/// each transaction once, with another wallet's events in between; the
/// cursor narrows `total`, and `offset` skips within what it selects.
pub async fn a_wallet_history_pages_by_its_keyset_cursor(index: Arc<dyn SearchIndex>) {
    index.ensure_indices().await.expect("ensure_indices");
    index
        .index_batch(&history_of_two_wallets())
        .await
        .expect("the batch is indexed");
    let whole = index
        .wallet_transactions(&wallet(WALLET_A), None, None, 0)
        .await
        .expect("history");
    let whole_positions: Vec<u64> = whole.items.iter().map(|item| item.position).collect();
    assert_eq!(whole_positions, [5, 4, 3, 1]);

    let mut walked = Vec::new();
    let mut before = None;
    loop {
        let page = index
            .wallet_transactions(&wallet(WALLET_A), before, Some(1), 0)
            .await
            .expect("a page by the cursor");
        assert_eq!(page.total, (whole.total - walked.len() as u64));
        let Some(last) = page.items.last() else { break };
        before = Some(last.position);
        walked.extend(page.items.iter().map(|item| item.position));
    }
    assert_eq!(walked, whole_positions);

    let skipped = index
        .wallet_transactions(&wallet(WALLET_A), Some(5), Some(10), 1)
        .await
        .expect("a cursor and an offset");
    let skipped: Vec<u64> = skipped.items.iter().map(|item| item.position).collect();
    assert_eq!(skipped, [3, 1]);
    // A position of another wallet's (B's 6), or past every one, selects
    // all of A's older than it: the whole history.
    for before in [6, u64::MAX] {
        let past_the_newest = index
            .wallet_transactions(&wallet(WALLET_A), Some(before), None, 0)
            .await
            .expect("a cursor past A's newest");
        assert_eq!(past_the_newest, whole, "before {before}");
    }
    let before_the_first = index
        .wallet_transactions(&wallet(WALLET_A), Some(1), None, 0)
        .await
        .expect("a cursor at the first position");
    assert_eq!(
        (before_the_first.total, before_the_first.items.len()),
        (0, 0)
    );
}

/// Two wallets of one owner, then ten credits alternating between them
/// whose times do not follow their positions (as across wallets they need
/// not: each is stamped before its append takes a position), the even ones
/// described "rent", the odd ones "fee", of 1.00 to 10.00.
fn credits_out_of_time_order() -> Vec<RecordedEvent> {
    const SHUFFLED_MS: [i64; 10] = [5, 3, 9, 1, 7, 2, 8, 4, 10, 6];
    let mut events = vec![
        created(1, WALLET_A, OWNER_A, day(1), "0.00"),
        created(2, WALLET_B, OWNER_A, day(1), "0.00"),
    ];
    let mut balances = [Decimal::ZERO, Decimal::ZERO];
    for (step, offset_ms) in (0_u64..).zip(SHUFFLED_MS) {
        let side = usize::from(step % 2 == 1);
        let credited = Decimal::from(step + 1);
        balances[side] += credited;
        events.push(recorded(EventAt {
            position: step + 3,
            stream_version: step / 2 + 2,
            wallet_id: [WALLET_A, WALLET_B][side],
            occurred_at: day(2) + Duration::milliseconds(offset_ms),
            balance_after: Balance::try_from(balances[side]).expect("a balance"),
            kind: EventKind::WalletCredited {
                amount: Amount::parse("amount", credited).expect("an amount"),
                description: description(if step % 2 == 0 { "rent" } else { "fee" }),
            },
        }));
    }
    events
}

/// A search walked by its keyset cursor (`before_position` = the last
/// position of the previous page) finds every match once, in the list's
/// order, though the times do not follow the positions (h151 F1: paging on
/// `to=` set to the oldest time read skipped the rows stamped earlier than
/// a row listed after them); with an owner, a wallet, a text and an amount
/// filter alike. The cursor narrows `total`.
pub async fn a_search_pages_by_its_keyset_cursor_whatever_the_times(index: Arc<dyn SearchIndex>) {
    let index = index.as_ref();
    index.ensure_indices().await.expect("ensure_indices");
    index
        .index_batch(&credits_out_of_time_order())
        .await
        .expect("the batch is indexed");
    let filters = [
        TransactionSearch {
            owner_id: Some(owner(OWNER_A)),
            ..TransactionSearch::default()
        },
        TransactionSearch {
            wallet_id: Some(wallet(WALLET_B)),
            ..TransactionSearch::default()
        },
        text("rent"),
        TransactionSearch {
            min_amount: Some(decimal("4.00")),
            ..TransactionSearch::default()
        },
        TransactionSearch::default(),
    ];
    for filter in filters {
        let whole = search(index, filter.clone()).await;
        let whole_positions: Vec<u64> = whole.items.iter().map(|item| item.position).collect();
        assert!(
            whole_positions.windows(2).all(|pair| pair[0] > pair[1]),
            "newest first by position: {whole_positions:?}"
        );
        assert!(
            whole_positions.len() >= 4,
            "{filter:?}: {whole_positions:?}"
        );
        let mut walked = Vec::new();
        let mut before_position = None;
        loop {
            let page = search(
                index,
                TransactionSearch {
                    before_position,
                    limit: Some(2),
                    ..filter.clone()
                },
            )
            .await;
            assert_eq!(page.total, whole.total - walked.len() as u64, "{filter:?}");
            let Some(last) = page.items.last() else { break };
            before_position = Some(last.position);
            walked.extend(page.items.iter().map(|item| item.position));
        }
        assert_eq!(walked, whole_positions, "{filter:?}");
    }
}

/// A bound written to the whole second is that instant, not its second:
/// Elasticsearch rounds the parts a date leaves out up for `lte` (h140 F1:
/// `to=…27Z` took in an event at `…27.493Z`, where the embedded index and
/// every other time filter did not).
pub async fn a_bound_on_a_whole_second_is_that_instant(index: Arc<dyn SearchIndex>) {
    let index = index.as_ref();
    let second = day(1);
    let half_past = second + Duration::milliseconds(500);
    index
        .index_batch(&[created(1, WALLET_A, OWNER_A, half_past, "0.00")])
        .await
        .expect("indexed");
    for (from, to, found) in [
        (None, Some(second), 0),
        (None, Some(half_past), 1),
        (Some(half_past), None, 1),
        (Some(second + Duration::seconds(1)), None, 0),
    ] {
        let bounded = TransactionSearch {
            from,
            to,
            ..TransactionSearch::default()
        };
        assert_eq!(
            search(index, bounded).await.total,
            found,
            "from {from:?} to {to:?}"
        );
    }
}

/// One `#[tokio::test]` per scenario, each calling `$harness(scenario)`.
#[macro_export]
macro_rules! search_index_conformance_tests {
    ($harness:path) => {
        $crate::search_index_conformance_tests!(
            @each $harness;
            a_wallet_history_comes_back_newest_first_with_exact_amounts,
            a_wallet_history_pages_by_its_keyset_cursor,
            a_search_pages_by_its_keyset_cursor_whatever_the_times,
            every_search_filter_narrows_the_result,
            a_bound_on_a_whole_second_is_that_instant,
            free_text_matches_every_word_of_a_description_or_a_whole_id,
            free_text_is_every_word_in_any_order_and_never_an_operator,
            free_text_folds_every_script_alike,
            invalid_queries_are_refused,
            redelivered_and_late_events_change_nothing,
            an_event_of_a_wallet_never_created_is_refused_for_a_retry,
            a_later_batch_finds_the_owner_of_an_earlier_one,
            a_batch_larger_than_one_bulk_request_is_indexed_whole,
            hold_events_are_transactions_in_the_history,
            a_client_chosen_id_is_found_as_written_only,
        );
    };
    (@each $harness:path; $($scenario:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $scenario() {
                $harness(|index| Box::pin($crate::conformance::$scenario(index))).await;
            }
        )+
    };
}
