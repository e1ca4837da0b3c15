//! The projection consumer against real PostgreSQL, Kafka and OpenSearch:
//! the read model and the search index are fed by a consumer group each, so
//! a search server that does not answer holds back neither the start nor
//! the read model, and once one answers the search index catches up from
//! its own group's offsets (stored in PostgreSQL), the read model's left as
//! they were. A deployment upgraded from one group for both views starts the
//! search index's group where that one stood, once.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::time::Duration;

use consumer_host::{RunError, ServerHandle, Settings};
use event_store::RecordedEvent;
use integration_tests::{
    create_named_topic, create_topic, in_migrated_database, produce, require_env, unique_name,
    TestDatabase,
};
use ledger::conformance::standard_log;
use postgres_support::consumer_offsets::{seed_once, stored};
use projection_consumer::{build, Config, STARTUP_INDICES_WAIT_MS};
use read_model::{PostgresReadModel, ReadModel};
use search_index::{ElasticsearchIndex, SearchIndex};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use wallet_domain::WalletId;

/// Bound on any wait for the consumer to apply what was produced.
const WAIT_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a waiting test looks again.
const WAIT_POLL: Duration = Duration::from_millis(100);
const TOPIC_PARTITIONS: i32 = 4;
const POOL_CONNECTIONS_MAX: u32 = 2;

/// A projection consumer running in this process.
struct Running {
    port: u16,
    handle: ServerHandle,
    task: JoinHandle<Result<(), RunError>>,
}

impl Running {
    async fn start(config: &Config) -> Self {
        let application = build(config).await.expect("the projection consumer starts");
        let port = application.port();
        let handle = application.handle();
        let task = tokio::spawn(application.run_until_stopped());
        Self { port, handle, task }
    }

    /// `GET path`: its status and body.
    async fn get(&self, path: &str) -> (u16, String) {
        let answer = reqwest::get(format!("http://127.0.0.1:{}{path}", self.port))
            .await
            .expect("the consumer answers");
        let status = answer.status().as_u16();
        (status, answer.text().await.unwrap_or_default())
    }

    async fn stop(self) {
        self.handle.stop(true).await;
        self.task
            .await
            .expect("the consumer task ends")
            .expect("the consumer stops cleanly");
    }
}

/// Polls `condition` until it holds, at most [`WAIT_TIMEOUT`].
async fn wait_for<F, Checking>(what: &str, mut condition: F)
where
    F: FnMut() -> Checking,
    Checking: std::future::Future<Output = bool>,
{
    let started = tokio::time::Instant::now();
    while !condition().await {
        assert!(
            started.elapsed() < WAIT_TIMEOUT,
            "{what}: not within {WAIT_TIMEOUT:?}"
        );
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// The next offsets `group` stored for `topic`, summed over its partitions:
/// the messages it has taken.
async fn taken(pool: &PgPool, group: &str, topic: &str) -> i64 {
    postgres_support::consumer_offsets::stored(pool, group, topic)
        .await
        .expect("the stored offsets")
        .values()
        .sum()
}

/// An address where nothing listens: requests to it are refused at once.
fn refusing_url() -> String {
    format!(
        "http://127.0.0.1:{}",
        integration_tests::system::free_port()
    )
}

fn wallets(events: &[RecordedEvent]) -> BTreeSet<WalletId> {
    events
        .iter()
        .map(|recorded| recorded.event.wallet_id.clone())
        .collect()
}

#[tokio::test]
async fn the_read_model_flows_while_the_search_server_is_away_and_the_index_catches_up_after() {
    let (Some(database_url), Some(brokers), Some(search_url)) = (
        require_env("DATABASE_URL"),
        require_env("KAFKA_BROKERS"),
        require_env("ELASTICSEARCH_URL"),
    ) else {
        return;
    };
    let database = TestDatabase::create(&database_url).await;
    let pool = postgres_support::connect(&database.url, POOL_CONNECTIONS_MAX)
        .await
        .expect("connect and migrate the test database");
    let topic = create_topic(&brokers, "wallex_it_projection", TOPIC_PARTITIONS).await;
    create_named_topic(&brokers, &format!("{topic}-dlq"), 1).await;
    let group = unique_name("wallex_it_projection_group");
    let prefix = unique_name("wallex_it_projection").to_lowercase();
    let settings = Settings::for_test(&database.url, &brokers, &topic, &group);
    let log = standard_log().recorded;
    let events = i64::try_from(log.len()).expect("a small log");
    let head = log.iter().map(|recorded| recorded.position).max();

    // No search server: the consumer starts, and the read model takes everything.
    let away = Config::for_test(settings.clone(), &refusing_url(), &prefix);
    let search_group = away.search_group_id();
    let running = Running::start(&away).await;
    produce(&brokers, &topic, &log).await;
    let read_model = PostgresReadModel::new(pool.clone());
    wait_for("the read model takes every event", || async {
        read_model.checkpoint().await.ok() == head
    })
    .await;
    assert_eq!(taken(&pool, &group, &topic).await, events);
    assert_eq!(
        taken(&pool, &search_group, &topic).await,
        0,
        "the search index's group stored nothing while its server was away"
    );
    let (status, health) = running.get("/health").await;
    assert_eq!(status, 200, "the read model works: {health}");
    assert!(
        health.contains(r#""status":"degraded""#)
            && health.contains(r#""elasticsearch":"down""#)
            && health.contains(r#""postgres":"up""#),
        "{health}"
    );
    assert_eq!(running.get("/health/live").await.0, 200);
    running.stop().await;

    // The search server answers: the search index catches up on its own group.
    let present = Config::for_test(settings, &search_url, &prefix);
    let running = Running::start(&present).await;
    let index = ElasticsearchIndex::connect(&search_url, &prefix).expect("a search index client");
    for wallet in wallets(&log) {
        wait_for(&format!("wallet {wallet} indexed"), || async {
            index.wallet(&wallet).await.ok().flatten().is_some()
        })
        .await;
    }
    wait_for("the search index's group stores its offsets", || async {
        taken(&pool, &search_group, &topic).await == events
    })
    .await;
    assert_eq!(
        taken(&pool, &group, &topic).await,
        events,
        "the read model's offsets are its own"
    );
    let (status, health) = running.get("/health").await;
    assert_eq!(status, 200, "{health}");
    running.stop().await;
    pool.close().await;
    database.drop_database().await;
}

/// Stores `offsets` (partition, next offset) for `group` on topic `t`.
async fn store(pool: &PgPool, group: &str, offsets: &[(i32, i64)]) {
    for &(partition, next) in offsets {
        sqlx::query(
            "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) \
             VALUES ($1, 't', $2, $3) ON CONFLICT (consumer_group, topic, partition) \
             DO UPDATE SET next_offset = excluded.next_offset",
        )
        .bind(group)
        .bind(partition)
        .bind(next)
        .execute(pool)
        .await
        .expect("offsets stored");
    }
}

#[tokio::test]
async fn the_search_group_starts_from_the_projection_groups_offsets_once() {
    in_migrated_database(|pool| async move {
        let offsets = |group: &'static str| {
            let pool = pool.clone();
            async move {
                let stored = stored(&pool, group, "t").await.expect("stored offsets");
                stored.into_iter().collect::<Vec<_>>()
            }
        };
        // Upgraded: the projection group stored offsets when both views held a batch.
        store(&pool, "old", &[(0, 5), (1, 7)]).await;
        assert_eq!(
            seed_once(&pool, "old", "old-search-index", "t").await.ok(),
            Some(2)
        );
        assert_eq!(offsets("old-search-index").await, [(0, 5), (1, 7)]);
        // Later starts copy nothing: the read model's group runs ahead alone now.
        store(&pool, "old", &[(0, 9)]).await;
        assert_eq!(
            seed_once(&pool, "old", "old-search-index", "t").await.ok(),
            Some(0)
        );
        assert_eq!(offsets("old-search-index").await, [(0, 5), (1, 7)]);

        // A new deployment: nothing to copy at the first start, nor ever after.
        assert_eq!(
            seed_once(&pool, "new", "new-search-index", "t").await.ok(),
            Some(0)
        );
        store(&pool, "new", &[(0, 3)]).await;
        assert_eq!(
            seed_once(&pool, "new", "new-search-index", "t").await.ok(),
            Some(0)
        );
        assert!(offsets("new-search-index").await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_search_server_that_never_answers_delays_the_start_by_the_bound_only() {
    let (Some(database_url), Some(brokers)) =
        (require_env("DATABASE_URL"), require_env("KAFKA_BROKERS"))
    else {
        return;
    };
    let database = TestDatabase::create(&database_url).await;
    let topic = create_topic(&brokers, "wallex_it_projection_mute", TOPIC_PARTITIONS).await;
    let group = unique_name("wallex_it_projection_group");
    let settings = Settings::for_test(&database.url, &brokers, &topic, &group);
    // Connections are taken (the kernel's backlog) and never answered, as by
    // a server stopped with SIGSTOP.
    let mute = TcpListener::bind("127.0.0.1:0").expect("a port");
    let url = format!("http://{}", mute.local_addr().expect("its address"));
    let config = Config::for_test(settings, &url, "wallex_it_mute");
    assert!(config.elasticsearch_request_timeout_ms > STARTUP_INDICES_WAIT_MS);

    let started = tokio::time::Instant::now();
    let running = Running::start(&config).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(STARTUP_INDICES_WAIT_MS + 3_000),
        "the start waited {took:?} on a search server that never answers"
    );
    assert_eq!(running.get("/health/live").await.0, 200);
    running.stop().await;
    drop(mute);
    database.drop_database().await;
}
