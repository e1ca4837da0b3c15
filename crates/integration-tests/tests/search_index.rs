//! The search index (`search-index` crate) against a real Elasticsearch or OpenSearch:
//! every conformance scenario (`search_index::conformance`), the same the embedded
//! index passes: idempotent indexing, wallets that never move back in time, every
//! query filter, and amounts that come back exact.

use std::sync::Arc;

use elasticsearch::http::transport::Transport;
use elasticsearch::indices::IndicesStatsParts;
use elasticsearch::params::Refresh;
use elasticsearch::{Elasticsearch, IndexParts};
use integration_tests::{require_env, unique_name, REQUEST_TIMEOUT};
use search_index::conformance::Scenario;
use search_index::{ElasticsearchIndex, SearchIndex, TransactionSearch};
use serde_json::json;

/// Runs a scenario against a fresh pair of indices, then deletes them; returns at
/// once when no server is configured.
async fn with_elasticsearch(scenario: Scenario) {
    let Some(url) = require_env("ELASTICSEARCH_URL") else {
        return;
    };
    let prefix = unique_name("wallex-it").to_lowercase();
    let index = ElasticsearchIndex::connect(&url, &prefix)
        .expect("a valid URL and prefix")
        // The scenarios read right after they write, as on the embedded index.
        .refreshing_on_write();
    index.ensure_indices().await.expect("indices are created");
    // A second start finds them there and is fine with it.
    index
        .ensure_indices()
        .await
        .expect("ensure_indices is idempotent");
    let index = Arc::new(index);
    scenario(Arc::clone(&index) as Arc<dyn SearchIndex>).await;
    index
        .delete_indices()
        .await
        .expect("the run's indices are deleted");
}

search_index::search_index_conformance_tests!(with_elasticsearch);

/// A transaction indexed by a version before `descriptionWords` (its
/// document has no such field) is still found by the words of its
/// description, until a rebuild gives it the field.
#[tokio::test]
async fn a_transaction_indexed_before_its_description_words_is_found_by_them() {
    let Some(url) = require_env("ELASTICSEARCH_URL") else {
        return;
    };
    let prefix = unique_name("wallex-it").to_lowercase();
    let index = ElasticsearchIndex::connect(&url, &prefix).expect("a valid URL and prefix");
    index.ensure_indices().await.expect("indices are created");
    let client = Elasticsearch::new(Transport::single_node(&url).expect("a URL"));
    let document = json!({
        "id": uuid::Uuid::now_v7(), "walletId": "w-old", "ownerId": "o-old", "type": "CREDIT",
        "amount": "1.00", "amountCents": 100, "balanceAfter": "1.00",
        "counterpartyWalletId": null, "transferId": null, "description": "Rent for March",
        "occurredAt": "2026-11-01T00:00:00Z", "position": 1, "streamVersion": 1
    });
    client
        .index(IndexParts::Index(index.transactions_index()))
        .body(document)
        .refresh(Refresh::True)
        .request_timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .expect("the index request reaches the server")
        .error_for_status_code()
        .expect("the old document is indexed");
    let found = |q: &str| {
        let search = TransactionSearch {
            q: Some(q.to_owned()),
            ..TransactionSearch::default()
        };
        let index = &index;
        async move {
            index
                .search_transactions(&search)
                .await
                .expect("search")
                .total
        }
    };
    assert_eq!(found("march RENT").await, 1);
    assert_eq!(found("rent april").await, 0);
    index
        .delete_indices()
        .await
        .expect("the run's indices are deleted");
}

/// How many documents the server has read from `index` by id (`_stats/get`).
async fn documents_got(client: &Elasticsearch, index: &str) -> u64 {
    let stats: serde_json::Value = client
        .indices()
        .stats(IndicesStatsParts::IndexMetric(&[index], &["get"]))
        .request_timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .expect("the stats request reaches the server")
        .error_for_status_code()
        .expect("the index's stats")
        .json()
        .await
        .expect("stats as JSON");
    stats["_all"]["total"]["get"]["total"]
        .as_u64()
        .expect("a get count in the stats")
}

/// A batch of wallets the index has met asks the server for none of them
/// (their owner and creation never change). A client that has not met them
/// (a restart) looks them up and finds their owners.
#[tokio::test]
async fn wallets_met_before_are_not_looked_up_again() {
    let Some(url) = require_env("ELASTICSEARCH_URL") else {
        return;
    };
    let prefix = unique_name("wallex-it").to_lowercase();
    let connect = || {
        ElasticsearchIndex::connect(&url, &prefix)
            .expect("a valid URL and prefix")
            .refreshing_on_write()
    };
    let index = connect();
    index.ensure_indices().await.expect("indices are created");
    let client = Elasticsearch::new(Transport::single_node(&url).expect("a URL"));
    let events = search_index::conformance::history_of_two_wallets();

    index.index_batch(&events[..2]).await.expect("creations");
    let before = documents_got(&client, index.wallets_index()).await;
    index
        .index_batch(&events[2..4])
        .await
        .expect("A's credit and debit");
    assert_eq!(
        documents_got(&client, index.wallets_index()).await,
        before,
        "a wallet met in an earlier batch is not looked up"
    );

    let restarted = connect();
    restarted
        .index_batch(&events[4..])
        .await
        .expect("the transfer");
    assert_eq!(
        documents_got(&client, index.wallets_index()).await,
        before + 2,
        "a client that has not met the two wallets looks both up"
    );
    let of_owner_b = TransactionSearch {
        owner_id: Some(wallet_domain::OwnerId::parse("owner-b").expect("an owner id")),
        ..TransactionSearch::default()
    };
    let found = restarted
        .search_transactions(&of_owner_b)
        .await
        .expect("search");
    assert_eq!(found.total, 2, "B's creation and the transfer it received");
    index
        .delete_indices()
        .await
        .expect("the run's indices are deleted");
}
