//! Whether every downstream system shows exactly what the client's book of
//! acknowledged operations implies: the event store (through
//! `GET /wallets/{id}`), the ledger, the read model and the search index
//! (directly and through `GET /wallets/{id}/transactions`). A lost event
//! leaves a balance short; a doubled posting shows in the ledger's balance
//! and entry count.

use std::time::Duration;

use rust_decimal::Decimal;
use search_index::{ElasticsearchIndex, SearchIndex};
use serde_json::Value;
use wallet_domain::WalletId;

use crate::client::{decimal, Api, Book};
use crate::system::System;

/// Pause between two comparisons while waiting for convergence.
const CONVERGENCE_POLL: Duration = Duration::from_millis(500);

/// Waits up to `timeout` until every system shows exactly the book's
/// balances; returns how long it took.
///
/// # Panics
/// When they still differ at the deadline: with the last difference and the binaries' logs.
pub async fn assert_converges(
    api: &Api,
    system: &System,
    book: &Book,
    owner: &str,
    timeout: Duration,
) -> Duration {
    let search = ElasticsearchIndex::connect(&system.elasticsearch_url, &system.index_prefix)
        .expect("a search index client");
    let started = tokio::time::Instant::now();
    loop {
        let Some(difference) = first_difference(api, &search, book, owner).await else {
            return started.elapsed();
        };
        if started.elapsed() > timeout {
            panic!(
                "the systems did not converge in {}s: {difference}\n{}",
                timeout.as_secs(),
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
        .get(&format!(
            "/wallets?ownerId={owner}&limit={}",
            book.wallets.len()
        ))
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

        if let Some(difference) =
            projections_difference(api, wallet, expected, version, &listed).await
        {
            return Some(difference);
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
    }
    match api.get("/ledger/verify").await {
        Some(verdict) if verdict["ok"] == true => None,
        verdict => Some(format!("GET /ledger/verify: {verdict:?}")),
    }
}

/// How the projections, read through the API, differ from `wallet` holding
/// `expected` at stream `version`: the ledger's summary (balance and entry
/// count), the wallet in `listed` (a `GET /wallets` answer: the read model)
/// and the count of `GET /wallets/{id}/transactions` (the search index).
pub async fn projections_difference(
    api: &Api,
    wallet: &str,
    expected: Decimal,
    version: Option<u64>,
    listed: &Value,
) -> Option<String> {
    let summary = api
        .get(&format!("/ledger/wallet/{wallet}/summary"))
        .await
        .unwrap_or(Value::Null);
    if decimal(&summary["balance"]) != Some(expected) || summary["entryCount"].as_u64() != version {
        return Some(format!(
            "ledger: {wallet} is {summary}, expected balance {expected} in {version:?} entries"
        ));
    }

    let projected = listed
        .as_array()
        .and_then(|wallets| wallets.iter().find(|listed| listed["id"] == wallet));
    let projected_right = projected.is_some_and(|projected| {
        decimal(&projected["balance"]) == Some(expected) && projected["version"].as_u64() == version
    });
    if !projected_right {
        return Some(format!(
            "read model: {wallet} is {projected:?}, expected {expected}"
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
    None
}
