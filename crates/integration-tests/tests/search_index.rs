//! The search index (`search-index` crate) against a real Elasticsearch or OpenSearch:
//! every conformance scenario (`search_index::conformance`), the same the embedded
//! index passes: idempotent indexing, wallets that never move back in time, every
//! query filter, and amounts that come back exact.

use std::sync::Arc;

use elasticsearch::http::transport::Transport;
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
