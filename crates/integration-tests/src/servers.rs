//! Fresh, uniquely named resources on the shared test servers, so that tests
//! running at once (and reruns) never see each other's data.

use std::future::Future;
use std::str::FromStr;

use event_store::RecordedEvent;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::{require_env, unique_name, REQUEST_TIMEOUT};

/// Connections of a scenario's pool: scenarios run one statement at a time.
const SCENARIO_POOL_CONNECTIONS_MAX: u32 = 4;

/// A database of its own on the server of `DATABASE_URL`, dropped by [`drop_database`](Self::drop_database).
pub struct TestDatabase {
    /// The server's database of `DATABASE_URL`, where the test's database is created and dropped.
    admin: PgConnectOptions,
    pub name: String,
    /// The server's URL with this database in place of the original one.
    pub url: String,
}

impl TestDatabase {
    /// # Panics
    /// When `server_url` is not a PostgreSQL URL or the server refuses `CREATE DATABASE`.
    pub async fn create(server_url: &str) -> Self {
        let options =
            PgConnectOptions::from_str(server_url).expect("DATABASE_URL is a PostgreSQL URL");
        let mut admin = options
            .connect()
            .await
            .expect("connect to the PostgreSQL of DATABASE_URL");
        let name = unique_name("wallex_test");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create a database for this test (the user needs CREATEDB)");
        admin.close().await.expect("close the admin connection");
        let url = options.clone().database(&name).to_url_lossy().to_string();
        Self {
            admin: options,
            name,
            url,
        }
    }

    /// Drops the database, closing whatever connections are still open to it.
    /// Connects anew: the server may have restarted since the database was made.
    pub async fn drop_database(self) {
        let mut admin = self
            .admin
            .connect()
            .await
            .expect("connect to the PostgreSQL of DATABASE_URL");
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await
        .expect("drop the database of this test");
        admin.close().await.expect("close the admin connection");
    }
}

/// Creates a topic named `<prefix>_<unique>` with `partitions` partitions and returns its name.
///
/// # Panics
/// When the broker does not create it.
pub async fn create_topic(brokers: &str, prefix: &str, partitions: i32) -> String {
    let name = unique_name(prefix);
    create_named_topic(brokers, &name, partitions).await;
    name
}

/// Creates the topic `name` with `partitions` partitions.
///
/// # Panics
/// When the broker does not create it.
pub async fn create_named_topic(brokers: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("a Kafka admin client");
    let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    let outcome = admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &options,
        )
        .await
        .expect("the broker answers CreateTopics");
    for result in outcome {
        result.expect("the topic is created");
    }
}

/// Runs `scenario` on a pool of a fresh database with the project's
/// migrations, then drops the database, also when the scenario panics.
/// Skips (or fails, when servers are required) without `DATABASE_URL`.
pub async fn in_migrated_database<Scenario, Outcome>(scenario: Scenario)
where
    Scenario: FnOnce(sqlx::PgPool) -> Outcome,
    Outcome: Future<Output = ()> + Send + 'static,
{
    let Some(server_url) = require_env("DATABASE_URL") else {
        return;
    };
    let database = TestDatabase::create(&server_url).await;
    let pool = postgres_support::connect(&database.url, SCENARIO_POOL_CONNECTIONS_MAX)
        .await
        .expect("connect and migrate the test database");
    let outcome = tokio::spawn(scenario(pool.clone())).await;
    pool.close().await;
    database.drop_database().await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

/// A producer as the relay's: idempotent, acknowledged by all replicas.
fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("an rdkafka producer")
}

/// Produces one message of `key` and `value` to `topic`.
///
/// # Panics
/// When the broker does not acknowledge it.
pub async fn produce_raw(brokers: &str, topic: &str, key: &str, value: &str) {
    produce_raw_with_headers(brokers, topic, key, value, &[]).await;
}

/// Produces one message of `key`, `value` and `headers` (name, value) to
/// `topic`.
///
/// # Panics
/// When the broker does not acknowledge it.
pub async fn produce_raw_with_headers(
    brokers: &str,
    topic: &str,
    key: &str,
    value: &str,
    headers: &[(&str, &str)],
) {
    let mut owned = rdkafka::message::OwnedHeaders::new();
    for (name, header_value) in headers {
        owned = owned.insert(rdkafka::message::Header {
            key: name,
            value: Some(header_value.as_bytes()),
        });
    }
    producer(brokers)
        .send(
            FutureRecord::to(topic)
                .key(key)
                .payload(value)
                .headers(owned),
            REQUEST_TIMEOUT,
        )
        .await
        .map_err(|(error, _)| error)
        .expect("the broker acknowledges the message");
}

/// Produces `events` to `topic` as the relay would (key = wallet id, value =
/// the stored envelope), one after another.
///
/// # Panics
/// When the broker does not acknowledge one.
pub async fn produce(brokers: &str, topic: &str, events: &[RecordedEvent]) {
    let producer = producer(brokers);
    for event in events {
        let value = event.to_json().expect("the event encodes");
        producer
            .send(
                FutureRecord::to(topic)
                    .key(event.event.wallet_id.as_str())
                    .payload(&value),
                REQUEST_TIMEOUT,
            )
            .await
            .map_err(|(error, _)| error)
            .expect("the broker acknowledges the message");
    }
}
