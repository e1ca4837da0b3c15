//! Elasticsearch (or OpenSearch) through the `elasticsearch` crate: index a document, find it.

use elasticsearch::http::transport::Transport;
use elasticsearch::indices::IndicesDeleteParts;
use elasticsearch::params::Refresh;
use elasticsearch::{Elasticsearch, IndexParts, SearchParts};
use integration_tests::{require_env, unique_name, REQUEST_TIMEOUT};
use serde_json::{json, Value};

fn client(url: &str) -> Elasticsearch {
    let transport = Transport::single_node(url).expect("ELASTICSEARCH_URL is a URL");
    Elasticsearch::new(transport)
}

#[tokio::test]
async fn an_indexed_document_is_found_by_a_search() {
    let Some(url) = require_env("ELASTICSEARCH_URL") else {
        return;
    };
    let client = client(&url);
    // Index names are lower case; each run has its own index.
    let index = unique_name("wallex-it-wallets").to_lowercase();
    let wallet_id = unique_name("wallet");

    client
        .index(IndexParts::IndexId(&index, &wallet_id))
        .body(json!({
            "wallet_id": wallet_id,
            "owner": "Ada Lovelace",
            "currency": "EUR",
            "balance": "125.50",
        }))
        .refresh(Refresh::True)
        .request_timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .expect("the index request reaches the server")
        .error_for_status_code()
        .expect("the document is indexed");

    let response = client
        .search(SearchParts::Index(&[&index]))
        .body(json!({
            "query": { "match": { "owner": "lovelace" } }
        }))
        .request_timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .expect("the search request reaches the server")
        .error_for_status_code()
        .expect("the search succeeds");
    let body: Value = response.json().await.expect("a JSON search response");

    let deleted = client
        .indices()
        .delete(IndicesDeleteParts::Index(&[&index]))
        .request_timeout(REQUEST_TIMEOUT)
        .send()
        .await;

    let hits = body["hits"]["hits"]
        .as_array()
        .expect("hits in the search response");
    assert_eq!(hits.len(), 1, "one document matches: {body}");
    assert_eq!(hits[0]["_id"].as_str(), Some(wallet_id.as_str()));
    assert_eq!(hits[0]["_source"]["currency"].as_str(), Some("EUR"));
    deleted
        .expect("the delete request reaches the server")
        .error_for_status_code()
        .expect("the index of this run is deleted");
}
