//! The search index (`search-index` crate) against a real Elasticsearch or OpenSearch:
//! every conformance scenario (`search_index::conformance`), the same the embedded
//! index passes: idempotent indexing, wallets that never move back in time, every
//! query filter, and amounts that come back exact.

use std::sync::Arc;

use integration_tests::{require_env, unique_name};
use search_index::conformance::Scenario;
use search_index::{ElasticsearchIndex, SearchIndex};

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
