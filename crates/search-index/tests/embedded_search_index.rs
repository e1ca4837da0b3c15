//! The embedded search index against a real SQLite file: every conformance
//! scenario (`search_index::conformance`), and what only it does: feed itself
//! from the relay with a durable checkpoint.

use std::sync::Arc;

use event_sink::EventSink;
use search_index::conformance::Scenario;
use search_index::{EmbeddedSearchIndex, SearchIndex, TransactionSearch};
use tempfile::TempDir;

/// Runs a scenario against a fresh index in a temporary directory.
async fn with_embedded_index(scenario: Scenario) {
    let directory = TempDir::new().expect("tempdir");
    let index = EmbeddedSearchIndex::open(directory.path()).expect("index opens");
    scenario(Arc::new(index)).await;
}

search_index::search_index_conformance_tests!(with_embedded_index);

#[tokio::test]
async fn delivered_batches_move_the_checkpoint_and_survive_a_reopen() {
    let directory = TempDir::new().expect("tempdir");
    let index = EmbeddedSearchIndex::open(directory.path()).expect("index opens");
    assert_eq!(EventSink::checkpoint(&index).await.expect("checkpoint"), 0);
    index.ping().await.expect("ping");

    let events = search_index::conformance::history_of_two_wallets();
    index.deliver(&events[..2]).await.expect("delivered");
    assert_eq!(EventSink::checkpoint(&index).await.expect("checkpoint"), 2);
    index.deliver(&events[2..]).await.expect("delivered");
    // A late redelivery of the first batch does not move it back.
    index.deliver(&events[..2]).await.expect("redelivered");
    assert_eq!(EventSink::checkpoint(&index).await.expect("checkpoint"), 6);
    drop(index);

    let reopened = EmbeddedSearchIndex::open(directory.path()).expect("index reopens");
    assert_eq!(
        EventSink::checkpoint(&reopened).await.expect("checkpoint"),
        6
    );
    let all = reopened
        .search_transactions(&TransactionSearch::default())
        .await
        .expect("search");
    assert_eq!(all.total, 6);
}

/// h133 F3: a value no build writes, met by the start's fill of the
/// description words, stopped it as "unavailable"; it is damage, named as
/// such, with the way back (the file moved out is built again).
#[tokio::test]
async fn a_value_no_build_writes_met_at_the_start_is_damage() {
    let directory = TempDir::new().expect("tempdir");
    drop(EmbeddedSearchIndex::open(directory.path()).expect("index opens"));
    rusqlite::Connection::open(directory.path().join("search_index.db"))
        .expect("opened")
        .execute(
            "UPDATE search_description_words_version SET version = 'x'",
            [],
        )
        .expect("edited");
    let Err(refused) = EmbeddedSearchIndex::open(directory.path()) else {
        panic!("opened");
    };
    assert!(
        matches!(refused, search_index::SearchIndexError::Damaged(_))
            && refused.to_string().contains("search_index.db is damaged"),
        "{refused}"
    );
}
