//! The projection consumer against real PostgreSQL, Kafka and OpenSearch:
//! the read model and the search index are fed by a consumer group each, so
//! a search server that does not answer holds back neither the start nor
//! the read model, and once one answers the search index catches up from
//! its own group's offsets (stored in PostgreSQL), the read model's left as
//! they were.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::time::Duration;

use consumer_host::{RunError, ServerHandle, Settings};
use event_store::RecordedEvent;
use integration_tests::{
    create_named_topic, create_topic, produce, require_env, unique_name, TestDatabase,
};
use ledger::conformance::standard_log;
use projection_consumer::{build, Config};
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
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
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
    assert_eq!(status, 503, "{health}");
    assert!(
        health.contains(r#""elasticsearch":"down""#) && health.contains(r#""postgres":"up""#),
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
