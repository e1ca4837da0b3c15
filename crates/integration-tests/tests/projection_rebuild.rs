//! `projection-consumer rebuild` against real PostgreSQL and OpenSearch: the read
//! model and the search index are built again from the event store beside the
//! live ones and switched in atomically (a table swap in one transaction, an
//! alias switch), so a reader polling meanwhile sees the old view or the new
//! one, never a half-built one; a second rebuild moves the alias on and drops
//! the old indices; an empty log is refused with the views untouched. The
//! live names are aliases from their first creation; a live index made under
//! its own name before that keeps working until the first rebuild replaces it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use consumer_host::Settings;
use event_store::{EventStore, PostgresEventStore, READ_ALL_BATCH_MAX};
use integration_tests::{require_env, unique_name, TestDatabase};
use ledger::conformance::standard_log;
use projection_consumer::{rebuild_from, Config, RebuildError};
use read_model::{PostgresReadModel, ReadModel, WalletListQuery};
use search_index::{ElasticsearchIndex, SearchIndex, FIRST_INDEX_SUFFIX};
use serde_json::{json, Value};

/// Connections of the test's pool.
const POOL_CONNECTIONS_MAX: u32 = 4;
/// Events per rebuild batch: small, so the rebuild takes several.
const BATCH_SIZE: usize = 2;
/// Pause between two reads of the polling reader.
const READER_POLL: Duration = Duration::from_millis(5);
/// More than the standard log's wallets.
const LIST_LIMIT: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuilt_views_replace_the_live_ones_atomically() {
    rebuild_twice(LiveIndex::BehindAlias).await;
}

/// A live index made under its own name (by a version before the aliases)
/// keeps working, and the first rebuild replaces it by the alias.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_index_made_before_the_aliases_is_replaced_by_the_first_rebuild() {
    rebuild_twice(LiveIndex::UnderItsOwnName).await;
}

/// How the live search index was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LiveIndex {
    /// Behind an alias of its name, as `ensure_indices` creates it.
    BehindAlias,
    /// Under the name itself, as versions before the aliases created it.
    UnderItsOwnName,
}

async fn rebuild_twice(live: LiveIndex) {
    let Some(database_url) = require_env("DATABASE_URL") else {
        return;
    };
    let Some(elasticsearch_url) = require_env("ELASTICSEARCH_URL") else {
        return;
    };
    let database = TestDatabase::create(&database_url).await;
    let pool = postgres_support::connect(&database.url, POOL_CONNECTIONS_MAX)
        .await
        .expect("connect and migrate the test database");
    let prefix = unique_name("wallex_rebuild").to_lowercase();
    let config = Config::for_test(
        Settings::for_test(&database.url, "unused:9092", "unused", "unused"),
        &elasticsearch_url,
        &prefix,
    );
    let store: Arc<dyn EventStore> = Arc::new(
        PostgresEventStore::connect(pool.clone())
            .await
            .expect("the event store opens"),
    );
    for append in standard_log().appends() {
        store.append(append).await.expect("the event is stored");
    }
    let stored = store
        .read_all(0, READ_ALL_BATCH_MAX)
        .await
        .expect("the log reads back");
    let expected: BTreeMap<String, u64> = stored
        .iter()
        .map(|recorded| {
            (
                recorded.event.wallet_id.as_str().to_owned(),
                recorded.stream_version,
            )
        })
        .collect();

    // The live views hold only the first event: stale, as after a bug fixed since.
    let live_model = PostgresReadModel::new(pool.clone());
    let live_index = ElasticsearchIndex::connect(&elasticsearch_url, &prefix).expect("a client");
    if live == LiveIndex::UnderItsOwnName {
        ElasticsearchIndex::connect(&elasticsearch_url, &prefix)
            .expect("a client")
            .under_own_names()
            .ensure_indices()
            .await
            .expect("the live indices under their own names");
    }
    live_index.ensure_indices().await.expect("the live indices");
    let first_live = format!("{prefix}-wallets{FIRST_INDEX_SUFFIX}");
    assert_eq!(
        aliased(&elasticsearch_url, &format!("{prefix}-wallets")).await,
        (live == LiveIndex::BehindAlias).then(|| first_live.clone()),
        "the live name is an alias from its first creation, and an index made before stays"
    );
    live_model
        .apply(&stored[..1], Some(stored[0].position))
        .await
        .expect("applied");
    live_index.index_batch(&stored[..1]).await.expect("indexed");
    live_index.refresh().await.expect("refreshed");
    let live_indexes = index_names(&pool).await;

    let reading = Arc::new(AtomicBool::new(true));
    let reader = tokio::spawn(poll_counts(
        pool.clone(),
        elasticsearch_url.clone(),
        prefix.clone(),
        reading.clone(),
        live,
    ));
    let outcome = rebuild_from(&config, Arc::clone(&store), &pool, BATCH_SIZE)
        .await
        .expect("the views are rebuilt");
    reading.store(false, Ordering::Relaxed);
    let seen = reader.await.expect("the reader ran");
    assert_eq!(outcome.events_applied, stored.len() as u64);
    assert!(outcome.batches > 1, "{outcome:?}");
    let wallets = expected.len() as u64;
    assert!(
        seen.iter()
            .all(|(rows, documents)| (*rows == 1 || *rows == wallets)
                && (*documents == 1 || *documents == wallets)),
        "a reader saw a half-built view: {seen:?}"
    );
    assert_views_hold(&pool, &elasticsearch_url, &prefix, &expected).await;
    assert_eq!(
        index_names(&pool).await,
        live_indexes,
        "the indexes keep their names"
    );
    let first_index = aliased(&elasticsearch_url, &format!("{prefix}-wallets")).await;
    assert_eq!(
        first_index.as_deref(),
        Some(format!("{}-wallets", outcome.index_prefix).as_str())
    );
    if live == LiveIndex::BehindAlias {
        let retired = reqwest::get(format!("{elasticsearch_url}/{first_live}/_count"))
            .await
            .expect("the server answers");
        assert_eq!(
            retired.status().as_u16(),
            404,
            "the first live index is deleted after the switch"
        );
    }

    // A projection-consumer starting now finds its indices (aliases now).
    live_index
        .ensure_indices()
        .await
        .expect("the aliases count as the indices");

    // Again: the alias moves on and the previous rebuild's indices go.
    let again = rebuild_from(&config, Arc::clone(&store), &pool, BATCH_SIZE)
        .await
        .expect("rebuilt again");
    assert_ne!(again.index_prefix, outcome.index_prefix);
    assert_views_hold(&pool, &elasticsearch_url, &prefix, &expected).await;
    let previous = reqwest::get(format!(
        "{elasticsearch_url}/{}-wallets",
        outcome.index_prefix
    ))
    .await
    .expect("the server answers");
    assert_eq!(
        previous.status().as_u16(),
        404,
        "the retired index is deleted"
    );

    // An empty log (another store configured) is refused before anything is built.
    sqlx::query("DELETE FROM events")
        .execute(&pool)
        .await
        .expect("the log is emptied");
    let refused = rebuild_from(&config, Arc::clone(&store), &pool, BATCH_SIZE).await;
    assert!(
        matches!(refused, Err(RebuildError::EmptyLog { .. })),
        "{refused:?}"
    );
    assert_views_hold(&pool, &elasticsearch_url, &prefix, &expected).await;

    for suffix in ["wallets", "transactions"] {
        let _ = reqwest::Client::new()
            .delete(format!(
                "{elasticsearch_url}/{}-{suffix}",
                again.index_prefix
            ))
            .send()
            .await;
    }
    pool.close().await;
    database.drop_database().await;
}

/// Both views show each wallet of `expected` at its version, and nothing else.
async fn assert_views_hold(
    pool: &sqlx::PgPool,
    elasticsearch_url: &str,
    prefix: &str,
    expected: &BTreeMap<String, u64>,
) {
    let listed: BTreeMap<String, u64> = PostgresReadModel::new(pool.clone())
        .list_wallets(WalletListQuery {
            owner_id: None,
            after: None,
            limit: LIST_LIMIT,
            seen_at: None,
        })
        .await
        .expect("the read model lists")
        .into_iter()
        .map(|wallet| (wallet.id.as_str().to_owned(), wallet.version))
        .collect();
    assert_eq!(&listed, expected, "the read model");
    let index = ElasticsearchIndex::connect(elasticsearch_url, prefix).expect("a client");
    for (wallet, version) in expected {
        let id = wallet_domain::WalletId::parse(wallet).expect("a wallet id");
        let indexed = index.wallet(&id).await.expect("the index answers");
        assert_eq!(
            indexed.map(|found| found.version),
            Some(*version),
            "{wallet} indexed"
        );
    }
}

/// The read model's rows and the search index's wallet documents, as a
/// reader sees them, each time they change, until `reading` is cleared.
async fn poll_counts(
    pool: sqlx::PgPool,
    elasticsearch_url: String,
    prefix: String,
    reading: Arc<AtomicBool>,
    live: LiveIndex,
) -> BTreeSet<(u64, u64)> {
    let client = reqwest::Client::new();
    let mut seen = BTreeSet::new();
    while reading.load(Ordering::Relaxed) {
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM wallet_read_model")
            .fetch_one(&pool)
            .await
            .expect("a reader always finds the read model");
        let counted: Value = client
            .get(format!("{elasticsearch_url}/{prefix}-wallets/_count"))
            .send()
            .await
            .expect("the search server answers")
            .json()
            .await
            .expect("a JSON count");
        // A search in flight on a live index under its own name when the first
        // switch replaces it by the alias fails (503, retried by callers); behind
        // an alias, every search finds an index. None sees a partial index.
        if let Some(documents) = counted["count"].as_u64() {
            seen.insert((u64::try_from(rows).unwrap_or_default(), documents));
        } else {
            assert_eq!(
                (live, &counted["status"]),
                (LiveIndex::UnderItsOwnName, &json!(503)),
                "only a retryable failure, and only on an index made before the aliases: {counted}"
            );
        }
        tokio::time::sleep(READER_POLL).await;
    }
    seen
}

/// The index the alias `name` points at, if it is one.
async fn aliased(elasticsearch_url: &str, name: &str) -> Option<String> {
    let response = reqwest::get(format!("{elasticsearch_url}/_alias/{name}"))
        .await
        .expect("the server answers");
    if response.status().as_u16() == 404 {
        return None;
    }
    let body: Value = response.json().await.expect("a JSON alias listing");
    body.as_object()?.keys().next().cloned()
}

/// The names of the read model's indexes.
async fn index_names(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes \
         WHERE tablename IN ('wallet_read_model', 'read_model_checkpoint') ORDER BY indexname",
    )
    .fetch_all(pool)
    .await
    .expect("the indexes are listed")
}
