//! The whole system as it runs in production: the four binaries as separate
//! processes on real PostgreSQL, Redis, Kafka and OpenSearch, driven only
//! through command-api's HTTP API.
//!
//! Every check compares the sum of acknowledged operations (the client's
//! book) with what each downstream system shows: the event store (through
//! `GET /wallets/{id}`), the ledger, the read model and the search index
//! (directly and through `GET /wallets/{id}/transactions`).
//! A lost event leaves a balance short; a doubled posting shows in the
//! ledger's balance and entry count.
//!
//! The binaries are the ones `cargo build --bins` put in this test's target
//! folder (or those in `WALLEX_BIN_DIR`); `scripts/ci-integration.sh` builds them.

mod client;
mod system;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client::{decimal, run_load, Api, Book};
use integration_tests::unique_name;
use search_index::{ElasticsearchIndex, SearchIndex};
use serde_json::{json, Value};
use system::{Servers, System, BINARIES};
use wallet_domain::WalletId;

const WALLETS: usize = 12;
const LOAD_WORKERS: usize = 8;
const OPERATIONS: usize = 400;
/// Bound on the crash test's load: it runs until the crashes are done.
const CRASH_OPERATIONS_MAX: usize = 1_000_000;
/// Rounds of killing each binary in turn.
const CRASH_ROUNDS: usize = 2;
/// Load time between two crashes.
const CRASH_INTERVAL: Duration = Duration::from_millis(1_500);
/// Bound on the downstream systems catching up with the event store.
const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(120);
const CONVERGENCE_POLL: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn money_flows_through_all_four_binaries() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let system = System::start(&servers).await;
    let api = Api::new(system.api_url());
    let owner = unique_name("owner");
    let opening = json!({"walletId": "anonymous", "ownerId": owner, "initialBalance": 5});
    assert_eq!(
        api.post_anonymously("/wallets", &opening).await,
        401,
        "authentication is on"
    );
    let book = Book::open(&api, &owner, WALLETS).await;

    run_load(
        &api,
        &book,
        LOAD_WORKERS,
        OPERATIONS,
        Arc::new(AtomicBool::new(true)),
    )
    .await;

    assert!(
        book.acknowledged() > OPERATIONS / 2,
        "most operations succeed"
    );
    assert_converges(&api, &system, &book, &owner).await;
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_dash_nine_of_any_binary_loses_and_doubles_nothing() {
    let Some(servers) = Servers::from_env() else {
        return;
    };
    let mut system = System::start(&servers).await;
    let api = Api::new(system.api_url());
    let owner = unique_name("owner");
    let book = Book::open(&api, &owner, WALLETS).await;

    let keep_going = Arc::new(AtomicBool::new(true));
    let load = {
        let (api, book, keep_going) = (api.clone(), book.clone(), keep_going.clone());
        tokio::spawn(async move {
            run_load(&api, &book, LOAD_WORKERS, CRASH_OPERATIONS_MAX, keep_going).await;
        })
    };
    for _ in 0..CRASH_ROUNDS {
        for binary in BINARIES {
            tokio::time::sleep(CRASH_INTERVAL).await;
            let before = book.acknowledged();
            system.crash_and_restart(binary).await;
            eprintln!("killed -9 and restarted {binary} ({before} operations acknowledged before)");
        }
    }
    tokio::time::sleep(CRASH_INTERVAL).await;
    keep_going.store(false, Ordering::Relaxed);
    load.await.expect("the load ran without a panic");

    eprintln!(
        "{} operations acknowledged across the crashes",
        book.acknowledged()
    );
    assert!(book.acknowledged() > 0, "the load got answers");
    assert_converges(&api, &system, &book, &owner).await;
    system.stop().await;
}

/// Waits until every system shows exactly the book's balances, or fails with
/// the last difference and the binaries' logs.
async fn assert_converges(api: &Api, system: &System, book: &Book, owner: &str) {
    let search = ElasticsearchIndex::connect(&system.elasticsearch_url, &system.index_prefix)
        .expect("a search index client");
    let deadline = tokio::time::Instant::now() + CONVERGENCE_TIMEOUT;
    loop {
        let difference = first_difference(api, &search, book, owner).await;
        let Some(difference) = difference else {
            return;
        };
        if tokio::time::Instant::now() > deadline {
            panic!(
                "the systems did not converge: {difference}\n{}",
                system.logs()
            );
        }
        tokio::time::sleep(CONVERGENCE_POLL).await;
    }
}

/// The first way in which some system disagrees with the book, if any.
async fn first_difference(
    api: &Api,
    search: &ElasticsearchIndex,
    book: &Book,
    owner: &str,
) -> Option<String> {
    let listed = api
        .get(&format!("/wallets?ownerId={owner}&limit={WALLETS}"))
        .await
        .unwrap_or(Value::Null);
    if search.refresh().await.is_err() {
        return Some("the search index did not refresh".into());
    }
    for wallet in &book.wallets {
        let expected = book.balance(wallet);
        let Some(current) = api.get(&format!("/wallets/{wallet}")).await else {
            return Some(format!("GET /wallets/{wallet} failed"));
        };
        if decimal(&current["balance"]) != Some(expected) {
            return Some(format!(
                "event store: {wallet} is {current}, expected {expected}"
            ));
        }
        let version = current["version"].as_u64();

        let summary = api
            .get(&format!("/ledger/wallet/{wallet}/summary"))
            .await
            .unwrap_or(Value::Null);
        if decimal(&summary["balance"]) != Some(expected)
            || summary["entryCount"].as_u64() != version
        {
            return Some(format!(
                "ledger: {wallet} is {summary}, expected balance {expected} in {version:?} entries"
            ));
        }

        let projected = listed.as_array().and_then(|wallets| {
            wallets
                .iter()
                .find(|listed| listed["id"] == wallet.as_str())
        });
        let projected_right = projected.is_some_and(|projected| {
            decimal(&projected["balance"]) == Some(expected)
                && projected["version"].as_u64() == version
        });
        if !projected_right {
            return Some(format!(
                "read model: {wallet} is {projected:?}, expected {expected}"
            ));
        }

        let id = WalletId::parse(wallet).expect("the test's wallet ids are valid");
        let indexed = search.wallet(&id).await.ok().flatten();
        let indexed_right = indexed.as_ref().is_some_and(|indexed| {
            indexed.balance.value() == expected && Some(indexed.version) == version
        });
        if !indexed_right {
            return Some(format!(
                "search index: {wallet} is {indexed:?}, expected {expected}"
            ));
        }

        let history = api
            .get(&format!("/wallets/{wallet}/transactions?limit=1"))
            .await
            .unwrap_or(Value::Null);
        if history["count"].as_u64() != version {
            return Some(format!(
                "GET /wallets/{wallet}/transactions: {history}, expected {version:?} transactions"
            ));
        }
    }
    match api.get("/ledger/verify").await {
        Some(verdict) if verdict["ok"] == true => None,
        verdict => Some(format!("GET /ledger/verify: {verdict:?}")),
    }
}
