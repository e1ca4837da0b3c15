//! The ledger consumer against real PostgreSQL and Kafka, each test on a database, a
//! topic (with its `-dlq`) and a consumer group of its own: events produced to the topic
//! are posted; a redelivery posts nothing twice; a transfer's halves in either order keep
//! every transaction balanced; an undecodable message goes to the DLQ while consumption
//! goes on; `rebuild` gives back the same ledger from the event store, and refuses,
//! changing nothing, when the store is empty or behind the ledger.

use std::time::Duration;

use consumer_host::{ReplayDlqArgs, RunError, ServerHandle, Settings};
use event_store::{EventStore, PostgresEventStore, RecordedEvent, READ_ALL_BATCH_MAX};
use event_store_choice::EventStoreArgs;
use integration_tests::{
    create_named_topic, create_topic, require_env, unique_name, TestDatabase, REQUEST_TIMEOUT,
};
use ledger::conformance::{everything, standard_log, EventLog};
use ledger::{Ledger, LedgerEntry, LedgerVerification, PostgresLedger};
use ledger_consumer::{build, rebuild, Config, RebuildError};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;
use tokio::task::JoinHandle;

/// Bound on any wait for the consumer to post what was produced.
const WAIT_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a waiting test looks again.
const WAIT_POLL: Duration = Duration::from_millis(100);
/// After the expected events were posted, how long a test watches for more.
const QUIET_PERIOD: Duration = Duration::from_secs(2);

/// A ledger consumer on resources of its own, and a view of its ledger.
struct Harness {
    database: TestDatabase,
    pool: PgPool,
    ledger: PostgresLedger,
    config: Config,
    producer: FutureProducer,
    port: u16,
    running: Option<(ServerHandle, JoinHandle<Result<(), RunError>>)>,
}

impl Harness {
    /// `None` (after a `skipped:` line) when the servers are not configured.
    const TOPIC_PARTITIONS: i32 = 4;
    const POOL_CONNECTIONS_MAX: u32 = 2;

    async fn start() -> Option<Self> {
        let database_url = require_env("DATABASE_URL")?;
        let brokers = require_env("KAFKA_BROKERS")?;
        let database = TestDatabase::create(&database_url).await;
        let pool = postgres_support::connect(&database.url, Self::POOL_CONNECTIONS_MAX)
            .await
            .expect("connect and migrate the test database");
        let topic = create_topic(&brokers, "wallex_it_ledger", Self::TOPIC_PARTITIONS).await;
        create_named_topic(&brokers, &format!("{topic}-dlq"), 1).await;
        let group = unique_name("wallex_it_ledger_group");
        let config = Config {
            command: None,
            settings: Settings::for_test(&database.url, &brokers, &topic, &group),
        };
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("enable.idempotence", "true")
            .create()
            .expect("an rdkafka producer");
        let application = build(&config).await.expect("the ledger consumer starts");
        let port = application.port();
        let handle = application.handle();
        let task = tokio::spawn(application.run_until_stopped());
        Some(Self {
            database,
            ledger: PostgresLedger::new(pool.clone()),
            pool,
            config,
            producer,
            port,
            running: Some((handle, task)),
        })
    }

    /// Produces `value` keyed by `key`, as the relay does (key = wallet id).
    async fn produce_raw(&self, key: &str, value: &str) {
        self.producer
            .send(
                FutureRecord::to(&self.config.settings.kafka_topic)
                    .key(key)
                    .payload(value),
                REQUEST_TIMEOUT,
            )
            .await
            .map_err(|(error, _message)| error)
            .expect("the broker acknowledges the message");
    }

    async fn produce(&self, events: &[RecordedEvent]) {
        for recorded in events {
            let value = recorded.to_json().expect("the event encodes");
            self.produce_raw(recorded.event.wallet_id.as_str(), &value)
                .await;
        }
    }

    async fn verification(&self) -> LedgerVerification {
        self.ledger.verify().await.expect("the ledger verifies")
    }

    async fn entries(&self) -> Vec<LedgerEntry> {
        self.ledger
            .transactions(everything())
            .await
            .expect("the ledger's entries")
    }

    /// Waits until `events` events are posted, then a little longer to see no more come.
    async fn wait_posted(&self, events: u64) -> LedgerVerification {
        self.wait_until(&format!("{events} events posted"), |_, verification| {
            verification.events_posted >= events
        })
        .await;
        tokio::time::sleep(QUIET_PERIOD).await;
        let verification = self.verification().await;
        assert_eq!(verification.events_posted, events, "{verification:?}");
        verification
    }

    /// Polls the metrics and the ledger until `condition` holds.
    async fn wait_until(&self, what: &str, condition: impl Fn(&str, &LedgerVerification) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT_TIMEOUT;
        loop {
            let metrics = self.get("/metrics").await.1;
            let verification = self.verification().await;
            if condition(&metrics, &verification) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited {WAIT_TIMEOUT:?} for {what}: {verification:?}\n{metrics}"
            );
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    /// The status and body of `GET <path>` on the consumer's HTTP port.
    async fn get(&self, path: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let answered = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let response = reqwest::get(url).await?;
            Ok::<_, reqwest::Error>((response.status().as_u16(), response.text().await?))
        });
        answered
            .await
            .expect("the consumer answers in time")
            .expect("the consumer answers over HTTP")
    }

    /// Stops the consumer as SIGTERM would; it must stop cleanly.
    async fn stop(&mut self) {
        let Some((handle, task)) = self.running.take() else {
            return;
        };
        handle.stop(true).await;
        task.await
            .expect("the application task")
            .expect("the consumer stopped cleanly");
    }

    async fn finish(mut self) {
        self.stop().await;
        self.pool.close().await;
        self.database.drop_database().await;
    }
}

/// The value of the sample of `metrics` whose name and labels are `sample`, 0 when absent.
fn metric(metrics: &str, sample: &str) -> u64 {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
        .find_map(|value| value.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

const POSTED: &str = "ledger_events_posted_total";
const SKIPPED: &str = "ledger_duplicates_skipped_total";
const DEAD_LETTERED: &str = "consumer_messages_dead_lettered_total{handler=\"ledger\"}";

#[tokio::test]
async fn produced_events_are_posted_once_even_when_redelivered() {
    let Some(harness) = Harness::start().await else {
        return;
    };
    let log = standard_log();
    let events = log.recorded.len() as u64;
    harness.produce(&log.recorded).await;
    let verification = harness.wait_posted(events).await;
    assert!(verification.ok, "{verification:?}");
    let entries = harness.entries().await;
    assert_eq!(
        entries.len(),
        10,
        "two per event that moves money (w-2 opens empty)"
    );

    let (status, health) = harness.get("/health").await;
    assert_eq!(status, 200, "{health}");
    assert!(health.contains("\"kafka\":\"up\""), "{health}");
    assert!(health.contains("\"postgres\":\"up\""), "{health}");
    let (status, live) = harness.get("/health/live").await;
    assert_eq!((status, live.as_str()), (200, r#"{"status":"alive"}"#));

    // Kafka delivers at least once: the same messages again post nothing.
    harness.produce(&log.recorded).await;
    harness
        .wait_until("the redelivery skipped", |metrics, _| {
            metric(metrics, SKIPPED) >= events
        })
        .await;
    assert_eq!(harness.wait_posted(events).await, verification);
    assert_eq!(harness.entries().await, entries);
    let metrics = harness.get("/metrics").await.1;
    assert_eq!(metric(&metrics, POSTED), events, "{metrics}");
    assert_eq!(metric(&metrics, SKIPPED), events, "{metrics}");
    assert!(metrics.contains("consumer_lag_messages"), "{metrics}");
    harness.finish().await;
}

#[tokio::test]
async fn transfer_halves_in_either_order_keep_every_transaction_balanced() {
    let Some(harness) = Harness::start().await else {
        return;
    };
    let mut log = EventLog::default();
    let created = [log.create("w-a", "100.00"), log.create("w-b", "0")];
    let (sent, received) = log.transfer("w-a", "w-b", "25.00");
    let (sent_back, received_back) = log.transfer("w-b", "w-a", "10.00");
    harness.produce(&created).await;
    harness.wait_posted(2).await;

    // The receiving half first: balanced, and the transfer is reported incomplete.
    harness.produce(std::slice::from_ref(&received)).await;
    let verification = harness.wait_posted(3).await;
    assert!(
        verification.unbalanced_transactions.is_empty(),
        "{verification:?}"
    );
    let transfer_id = received.event.kind.transfer_id().expect("a transfer");
    assert_eq!(verification.transfers_missing_half, vec![transfer_id]);
    assert!(!verification.ok);

    // Then the sending half, and another transfer in the usual order.
    harness.produce(&[sent, sent_back, received_back]).await;
    let verification = harness.wait_posted(6).await;
    assert!(verification.ok, "{verification:?}");
    assert!(verification.unbalanced_transactions.is_empty());
    assert!(verification.transfers_missing_half.is_empty());
    harness.finish().await;
}

#[tokio::test]
async fn an_undecodable_message_is_dead_lettered_and_consumption_continues() {
    let Some(harness) = Harness::start().await else {
        return;
    };
    let log = standard_log();
    let (first, rest) = log.recorded.split_at(1);
    harness.produce(first).await;
    // Keyed by a wallet of its own: a message keyed by w-1 would park w-1's
    // later events behind it (per-wallet order, see kafka_bus.rs).
    harness.produce_raw("w-garbage", "{not an event").await;
    harness.produce(rest).await;
    let verification = harness.wait_posted(log.recorded.len() as u64).await;
    assert!(verification.ok, "{verification:?}");
    let metrics = harness.get("/metrics").await.1;
    assert_eq!(metric(&metrics, DEAD_LETTERED), 1, "{metrics}");

    // replay-dlq puts it back on the topic; still undecodable, it is parked again.
    let replay = ReplayDlqArgs { limit: 10 };
    let settings = &harness.config.settings;
    let consumers = [(
        settings.kafka_group_id.as_str(),
        ledger_consumer::HANDLER_NAME,
    )];
    let replayed = replay
        .run(settings, &consumers)
        .await
        .expect("the dead letters are replayed");
    assert_eq!(replayed, 1);
    harness
        .wait_until("the replayed message parked again", |metrics, _| {
            metric(metrics, DEAD_LETTERED) >= 2
        })
        .await;
    assert_eq!(harness.verification().await, verification);
    harness.finish().await;
}

#[tokio::test]
async fn rebuild_gives_the_same_ledger_from_the_event_store() {
    let Some(mut harness) = Harness::start().await else {
        return;
    };
    let mut log = standard_log();
    log.credit("w-2", "7.50");
    log.transfer("w-2", "w-1", "12.25");
    let store = PostgresEventStore::connect(harness.pool.clone())
        .await
        .expect("the event store opens");
    for append in log.appends() {
        store.append(append).await.expect("the event is stored");
    }
    let stored = store
        .read_all(0, READ_ALL_BATCH_MAX)
        .await
        .expect("the log reads back");
    harness.produce(&stored).await;
    let before = harness.wait_posted(stored.len() as u64).await;
    assert!(before.ok, "{before:?}");
    let entries = harness.entries().await;

    harness.stop().await;
    // Small batches, so the rebuild takes several.
    let outcome = rebuild(&harness.config.settings, &EventStoreArgs::postgres(), 3)
        .await
        .expect("the ledger is rebuilt");
    assert_eq!(outcome.events_posted, stored.len() as u64);
    assert_eq!(
        outcome.events_skipped, 0,
        "the rebuild starts from an empty ledger"
    );
    assert!(outcome.batches > 1, "{outcome:?}");
    assert_eq!(harness.verification().await, before);
    assert_eq!(harness.entries().await, entries);
    let head = store.head_position().await.expect("head");
    assert_eq!(
        Ledger::checkpoint(&harness.ledger)
            .await
            .expect("checkpoint"),
        head
    );
    harness.finish().await;
}

#[tokio::test]
async fn rebuild_refuses_before_emptying_when_the_log_is_behind_or_empty() {
    let Some(mut harness) = Harness::start().await else {
        return;
    };
    let log = standard_log();
    let store = PostgresEventStore::connect(harness.pool.clone())
        .await
        .expect("the event store opens");
    for append in log.appends() {
        store.append(append).await.expect("the event is stored");
    }
    let stored = store
        .read_all(0, READ_ALL_BATCH_MAX)
        .await
        .expect("the log reads back");
    harness.produce(&stored).await;
    let posted = harness.wait_posted(stored.len() as u64).await;
    assert!(posted.ok, "{posted:?}");
    let entries = harness.entries().await;
    harness.stop().await;
    let head = store.head_position().await.expect("head");

    // The log lost its tail (a store restored from an older backup).
    sqlx::query("DELETE FROM events WHERE position > $1")
        .bind(i64::try_from(head - 1).expect("a position fits i64"))
        .execute(&harness.pool)
        .await
        .expect("the tail is deleted");
    let behind = rebuild(&harness.config.settings, &EventStoreArgs::postgres(), 3).await;
    assert!(
        matches!(behind, Err(RebuildError::LogBehindLedger { head: found, checkpoint })
            if found == head - 1 && checkpoint == head),
        "{behind:?}"
    );

    // Another store, or an empty one.
    sqlx::query("DELETE FROM events")
        .execute(&harness.pool)
        .await
        .expect("the log is emptied");
    let empty = rebuild(&harness.config.settings, &EventStoreArgs::postgres(), 3).await;
    assert!(
        matches!(empty, Err(RebuildError::EmptyLog { checkpoint }) if checkpoint == head),
        "{empty:?}"
    );
    assert_eq!(harness.entries().await, entries, "the ledger is untouched");
    let checkpoint = Ledger::checkpoint(&harness.ledger)
        .await
        .expect("checkpoint");
    assert_eq!(checkpoint, head, "the checkpoint is untouched");
    harness.finish().await;
}
