//! The event bus against a real Kafka (and PostgreSQL for the publisher's checkpoint):
//! the publisher's checkpoint moves only after delivery; the consumer loop hands batches
//! in per-key order, commits, and resumes after a restart without handing anything
//! committed again; a message its handler cannot take goes to the DLQ, and back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use event_bus::{
    dead_letters_to_replay, group_progress, replay_dlq, run_consumer_with_metrics, ConsumerConfig,
    ConsumerMetrics, KafkaPublisher, ParkedWallets, PublisherConfig, PublisherMetrics,
    HEADER_REPLAYED_FOR, PUBLISHER_CHECKPOINT_NAME_DEFAULT,
};
use event_sink::{DeliveryError, EventSink};
use event_store::{AppendRequest, EventStore, PostgresEventStore, RecordedEvent, StreamAppend};
use integration_tests::{
    continue_history, create_topic, produce, produce_raw, produce_raw_with_headers, require_env,
    unique_name, TestDatabase,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use tokio::sync::watch;
use uuid::Uuid;
use wallet_domain::{WalletEvent, WalletId};

/// Bound on any wait for messages to arrive or be handled.
const WAIT_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a waiting test looks again.
const WAIT_POLL: Duration = Duration::from_millis(50);
/// After the expected messages arrived, how long a test keeps watching for unexpected ones.
const QUIET_PERIOD: Duration = Duration::from_secs(2);
const TOPIC_PARTITIONS: i32 = 4;
const POOL_CONNECTIONS_MAX: u32 = 2;
/// The test handler's name, in metrics and the DLQ's `handler` header.
const HANDLER: &str = "recorder";
/// Transient failures the flaky handler returns before it takes its batches:
/// more than `handler_attempts_max`, so only an endless retry gets past them.
const TRANSIENT_FAILURES: usize = 8;
/// Bounds of the relay's drain in the stored-bytes test.
const RELAY_BATCH_SIZE_MAX: usize = 2;
const RELAY_BATCHES_MAX: usize = 10;

// --- helpers ---------------------------------------------------------------------------

/// `wallets` wallets of `length` events each, interleaved as a log would hold them.
fn interleaved_log(
    run: &str,
    wallets: usize,
    length: usize,
    first_position: u64,
) -> Vec<RecordedEvent> {
    let histories: Vec<Vec<WalletEvent>> = (0..wallets)
        .map(|index| {
            let wallet = WalletId::parse(&format!("w{index}-{run}")).expect("wallet id");
            continue_history(&wallet, &[], length)
        })
        .collect();
    let mut log = Vec::with_capacity(wallets * length);
    for version in 0..length {
        for history in &histories {
            log.push(RecordedEvent {
                position: first_position + log.len() as u64,
                stream_version: version as u64 + 1,
                event: history[version].clone(),
            });
        }
    }
    log
}

/// Every message of `topic`, read from the start by a fresh group, until `count` came.
async fn read_topic(brokers: &str, topic: &str, count: usize) -> Vec<OwnedMessage> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique_name("wallex_it_reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("an rdkafka consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = tokio::time::Instant::now() + WAIT_TIMEOUT;
    let mut messages = Vec::with_capacity(count);
    while messages.len() < count {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("read {} of {count} messages of {topic}", messages.len()))
            .expect("a message");
        messages.push(message.detach());
    }
    // Anything beyond `count` would be a duplicate or a stray: wait a little for it.
    if let Ok(Ok(extra)) = tokio::time::timeout(QUIET_PERIOD, consumer.recv()).await {
        messages.push(extra.detach());
    }
    messages
}

fn header(message: &OwnedMessage, name: &str) -> Option<String> {
    message.headers()?.iter().find_map(|header| {
        (header.key == name)
            .then(|| String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned())
    })
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT_TIMEOUT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// Records every batch; fails (always) any batch holding the poisoned event id.
#[derive(Default)]
struct Recorder {
    handled: Mutex<Vec<RecordedEvent>>,
    batches: Mutex<usize>,
    poisoned: Option<Uuid>,
    /// Transient failures still to return before handling anything.
    transient_failures_left: AtomicUsize,
    /// Calls still to leave unanswered (a store that hangs) before handling anything.
    hangs_left: AtomicUsize,
    /// Until when every call fails transiently (a store that is away).
    failing_until: Option<std::time::Instant>,
}

impl Recorder {
    fn poisoned(event_id: Uuid) -> Self {
        Self {
            poisoned: Some(event_id),
            ..Self::default()
        }
    }

    fn flaky(transient_failures: usize) -> Self {
        Self {
            transient_failures_left: AtomicUsize::new(transient_failures),
            ..Self::default()
        }
    }

    fn failing_for(away: Duration) -> Self {
        Self {
            failing_until: Some(std::time::Instant::now() + away),
            ..Self::default()
        }
    }

    fn hanging(hangs: usize) -> Self {
        Self {
            hangs_left: AtomicUsize::new(hangs),
            ..Self::default()
        }
    }

    fn handled(&self) -> Vec<RecordedEvent> {
        self.handled.lock().expect("recorder lock").clone()
    }

    fn handled_count(&self) -> usize {
        self.handled.lock().expect("recorder lock").len()
    }
}

#[async_trait]
impl EventSink for Recorder {
    fn name(&self) -> &'static str {
        HANDLER
    }

    async fn checkpoint(&self) -> Result<u64, DeliveryError> {
        let handled = self.handled.lock().expect("recorder lock");
        Ok(handled
            .iter()
            .map(|event| event.position)
            .max()
            .unwrap_or(0))
    }

    async fn deliver(&self, batch: &[RecordedEvent]) -> Result<(), DeliveryError> {
        let hangs = self.hangs_left.load(Ordering::SeqCst);
        if hangs > 0 {
            self.hangs_left.store(hangs - 1, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
        if self
            .failing_until
            .is_some_and(|until| std::time::Instant::now() < until)
        {
            return Err(DeliveryError::transient(
                HANDLER,
                std::io::Error::other("the store is away (on purpose)"),
            ));
        }
        let left = self.transient_failures_left.load(Ordering::SeqCst);
        if left > 0 {
            self.transient_failures_left
                .store(left - 1, Ordering::SeqCst);
            return Err(DeliveryError::transient(
                HANDLER,
                std::io::Error::other("connection refused (on purpose)"),
            ));
        }
        if let Some(poisoned) = self.poisoned {
            if batch.iter().any(|event| event.event.event_id == poisoned) {
                return Err(DeliveryError::permanent(
                    HANDLER,
                    std::io::Error::other(format!("poisoned event {poisoned}")),
                ));
            }
        }
        *self.batches.lock().expect("recorder lock") += 1;
        self.handled
            .lock()
            .expect("recorder lock")
            .extend_from_slice(batch);
        Ok(())
    }
}

fn consumer_config(brokers: &str, topic: &str, dlq_topic: &str, group: &str) -> ConsumerConfig {
    let mut config = ConsumerConfig::new(brokers, group);
    config.topic = topic.to_owned();
    config.dlq_topic = dlq_topic.to_owned();
    config.handler_attempts_max = 3;
    config.handler_backoff_initial_ms = 10;
    config.handler_backoff_max_ms = 50;
    config.session_timeout_ms = 6_000;
    config
}

/// The config of a consumer on a fresh topic and dead-letter topic named
/// after `prefix`, in a group of its own, `log` produced to the topic.
async fn fresh_consumer(brokers: &str, prefix: &str, log: &[RecordedEvent]) -> ConsumerConfig {
    let topic = create_topic(brokers, prefix, TOPIC_PARTITIONS).await;
    let dlq_topic = create_topic(brokers, &format!("{prefix}_dlq"), 1).await;
    produce(brokers, &topic, log).await;
    consumer_config(brokers, &topic, &dlq_topic, &unique_name("wallex_it_group"))
}

/// Runs a consumer of `config` into `recorder` until it has handled
/// `events` events, then (after a quiet period when `quiet`, to see that no
/// more come) stops it; its counters go to `metrics`.
async fn consume_until_handled(
    config: ConsumerConfig,
    recorder: &Arc<Recorder>,
    metrics: &ConsumerMetrics,
    events: usize,
    quiet: bool,
) {
    let what = format!("{events} events are handled");
    let quiet = if quiet { QUIET_PERIOD } else { Duration::ZERO };
    consume_until(&config, Arc::clone(recorder), metrics, &what, quiet, || {
        recorder.handled_count() >= events
    })
    .await;
}

/// Runs a consumer of `config` into `recorder` until it has handled
/// `events` events and dead-lettered `letters` (`what` says so), then for
/// [`QUIET_PERIOD`] more, to see that no more come; returns how many it
/// dead-lettered.
async fn consume_until_parked(
    config: &ConsumerConfig,
    recorder: &Arc<Recorder>,
    what: &str,
    events: usize,
    letters: u64,
) -> u64 {
    let metrics = ConsumerMetrics::unregistered().expect("metrics");
    let dead_lettered = metrics.dead_lettered.with_label_values(&[HANDLER]);
    consume_until(
        config,
        Arc::clone(recorder),
        &metrics,
        what,
        QUIET_PERIOD,
        || recorder.handled_count() >= events && dead_lettered.get() >= letters,
    )
    .await;
    dead_lettered.get()
}

/// Versions handed per wallet, in the order handed.
fn versions_by_wallet(events: &[RecordedEvent]) -> BTreeMap<String, Vec<u64>> {
    let mut by_wallet: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for event in events {
        by_wallet
            .entry(event.event.wallet_id.as_str().to_owned())
            .or_default()
            .push(event.stream_version);
    }
    by_wallet
}

/// A fresh database with the project's migrations, a fresh topic named after
/// `prefix`, and a publisher to that topic keeping its checkpoint in the
/// database, its counters in `metrics`.
struct Publishing {
    database: TestDatabase,
    pool: sqlx::PgPool,
    topic: String,
    publisher: KafkaPublisher,
    metrics: PublisherMetrics,
}

impl Publishing {
    async fn create(brokers: &str, url: &str, prefix: &str) -> Self {
        let database = TestDatabase::create(url).await;
        let pool = postgres_support::connect(&database.url, POOL_CONNECTIONS_MAX)
            .await
            .expect("connect and migrate the test database");
        let topic = create_topic(brokers, prefix, TOPIC_PARTITIONS).await;
        let mut config = PublisherConfig::new(brokers);
        config.topic = topic.clone();
        let metrics = PublisherMetrics::unregistered().expect("metrics");
        let publisher =
            KafkaPublisher::new(config, pool.clone(), metrics.clone()).expect("a publisher");
        Self {
            database,
            pool,
            topic,
            publisher,
            metrics,
        }
    }

    async fn drop_all(self) {
        drop(self.publisher);
        self.pool.close().await;
        self.database.drop_database().await;
    }
}

// --- tests -----------------------------------------------------------------------------

#[tokio::test]
async fn a_batch_kafka_took_whose_checkpoint_was_refused_is_not_published_again() {
    let (Some(brokers), Some(url)) = (require_env("KAFKA_BROKERS"), require_env("DATABASE_URL"))
    else {
        return;
    };
    let publishing = Publishing::create(&brokers, &url, "wallex_it_unstored").await;
    let (pool, publisher) = (&publishing.pool, &publishing.publisher);
    let batch = interleaved_log(&unique_name("run"), 2, 3, 1);
    let rename = |from: &str, to: &str| format!("ALTER TABLE {from} RENAME TO {to}");

    // The checkpoint's table away, as PostgreSQL refusing writes would be.
    sqlx::query(&rename("relay_checkpoints", "relay_checkpoints_away"))
        .execute(pool)
        .await
        .expect("the table moved away");
    for _ in 0..2 {
        publisher
            .deliver(&batch)
            .await
            .expect_err("the checkpoint is refused");
    }
    sqlx::query(&rename("relay_checkpoints_away", "relay_checkpoints"))
        .execute(pool)
        .await
        .expect("the table back");
    publisher
        .deliver(&batch)
        .await
        .expect("the checkpoint is stored");
    assert_eq!(publisher.checkpoint().await.expect("checkpoint"), 6);
    let messages = read_topic(&brokers, &publishing.topic, batch.len()).await;
    assert_eq!(
        messages.len(),
        batch.len(),
        "published once, however often its checkpoint was refused"
    );
    publishing.drop_all().await;
}

#[tokio::test]
async fn the_publisher_delivers_a_batch_before_its_checkpoint_moves() {
    let (Some(brokers), Some(url)) = (require_env("KAFKA_BROKERS"), require_env("DATABASE_URL"))
    else {
        return;
    };
    let publishing = Publishing::create(&brokers, &url, "wallex_it_publish").await;
    let (pool, topic) = (&publishing.pool, &publishing.topic);
    let (publisher, metrics) = (&publishing.publisher, &publishing.metrics);
    publisher
        .probe()
        .await
        .expect("the topic is known to the brokers");
    assert_eq!(publisher.checkpoint().await.expect("checkpoint"), 0);

    let run = unique_name("run");
    let batch = interleaved_log(&run, 3, 4, 1);
    publisher
        .deliver(&batch)
        .await
        .expect("the batch is delivered");
    assert_eq!(publisher.checkpoint().await.expect("checkpoint"), 12);
    assert_eq!(metrics.events_published.get(), 12);

    let messages = read_topic(&brokers, topic, batch.len()).await;
    assert_eq!(messages.len(), batch.len(), "each event once");
    let mut positions_by_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for message in &messages {
        let value = std::str::from_utf8(message.payload().expect("a value")).expect("UTF-8");
        let event = RecordedEvent::from_json(value).expect("the value is an envelope");
        assert_eq!(
            message.key(),
            Some(event.event.wallet_id.as_str().as_bytes()),
            "the key is the wallet id"
        );
        assert_eq!(
            header(message, "event-id"),
            Some(event.event.event_id.to_string())
        );
        assert_eq!(
            header(message, "event-type").as_deref(),
            Some(event.event.type_name())
        );
        assert_eq!(
            header(message, "position"),
            Some(event.position.to_string())
        );
        positions_by_key
            .entry(event.event.wallet_id.as_str().to_owned())
            .or_default()
            .push(event.position);
    }
    for (key, positions) in &positions_by_key {
        let mut sorted = positions.clone();
        sorted.sort_unstable();
        assert_eq!(positions, &sorted, "{key}'s events in log order");
    }
    published_offsets_tell_when_a_group_has_caught_up(pool, topic, &messages).await;

    // A publisher whose broker never answers fails the batch and leaves the checkpoint.
    let mut unreachable = PublisherConfig::new("127.0.0.1:1");
    unreachable.topic = topic.clone();
    unreachable.message_timeout_ms = 1_000;
    let stranded = KafkaPublisher::new(
        unreachable,
        pool.clone(),
        PublisherMetrics::unregistered().expect("metrics"),
    )
    .expect("a publisher");
    let next = interleaved_log(&run, 1, 2, 13);
    let failed = stranded.deliver(&next).await;
    assert!(failed.is_err(), "an undelivered batch fails");
    assert_eq!(
        stranded.checkpoint().await.expect("checkpoint"),
        12,
        "the checkpoint stays where delivery stopped"
    );
    drop(stranded);
    publishing.drop_all().await;
}

/// With the log up to 12 published as `messages`: the relay's checkpoint
/// and published offsets (one past each partition's last message) read
/// together, and a consumer group has applied them once its stored offsets
/// reach them on every partition.
async fn published_offsets_tell_when_a_group_has_caught_up(
    pool: &sqlx::PgPool,
    topic: &str,
    messages: &[OwnedMessage],
) {
    let mut expected: BTreeMap<i32, i64> = BTreeMap::new();
    for message in messages {
        let next = expected.entry(message.partition()).or_default();
        *next = (*next).max(message.offset() + 1);
    }
    assert!(expected.len() > 1, "the batch spans partitions");
    let group = unique_name("group");
    let progress = || group_progress(pool, PUBLISHER_CHECKPOINT_NAME_DEFAULT, topic, &group);

    let before = progress().await.expect("the progress reads");
    assert_eq!(before.checkpoint, 12);
    assert_eq!(before.published, expected);
    assert!(before.applied.is_empty(), "a group that stored nothing");
    assert!(!before.applied_all_of(&expected));

    let store = |partition: i32, next: i64| {
        let group = group.clone();
        async move {
            sqlx::query(
                "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (consumer_group, topic, partition) \
                 DO UPDATE SET next_offset = EXCLUDED.next_offset",
            )
            .bind(&group)
            .bind(topic)
            .bind(partition)
            .bind(next)
            .execute(pool)
            .await
            .expect("offsets stored");
        }
    };
    let (last_partition, last_next) = expected
        .iter()
        .next_back()
        .map(|(partition, next)| (*partition, *next))
        .expect("a partition");
    for (partition, next) in &expected {
        store(*partition, *next).await;
    }
    store(last_partition, last_next - 1).await;
    let short = progress().await.expect("the progress reads");
    assert!(
        !short.applied_all_of(&expected),
        "one partition a message short"
    );
    store(last_partition, last_next).await;
    let caught_up = progress().await.expect("the progress reads");
    assert_eq!(caught_up.applied, expected);
    assert!(
        caught_up.applied_all_of(&expected),
        "every partition reached"
    );
}

/// A member's client reports its group state (`statistics.interval.ms`),
/// which the loop reads: the gauge says it is in its group, and the stall
/// watch gives a member waiting for a rebalance its longer bound.
#[tokio::test]
async fn a_member_reports_from_its_clients_statistics_that_it_is_in_its_group() {
    let Some(brokers) = require_env("KAFKA_BROKERS") else {
        return;
    };
    let log = interleaved_log(&unique_name("run"), 2, 2, 1);
    let config = fresh_consumer(&brokers, "wallex_it_in_group", &log).await;
    let recorder = Arc::new(Recorder::default());
    let metrics = ConsumerMetrics::unregistered().expect("metrics");
    let in_group = metrics.in_group.with_label_values(&[HANDLER]);
    consume_until(
        &config,
        recorder,
        &metrics,
        "the member says it is in its group",
        Duration::ZERO,
        || in_group.get() == 1,
    )
    .await;
}

#[tokio::test]
async fn the_consumer_hands_batches_in_key_order_and_resumes_after_its_commit() {
    let Some(brokers) = require_env("KAFKA_BROKERS") else {
        return;
    };
    let topic = create_topic(&brokers, "wallex_it_consume", TOPIC_PARTITIONS).await;
    let dlq_topic = create_topic(&brokers, "wallex_it_consume_dlq", 1).await;
    let group = unique_name("wallex_it_group");
    let run = unique_name("run");
    let first = interleaved_log(&run, 5, 20, 1);
    produce(&brokers, &topic, &first).await;

    let recorder = Arc::new(Recorder::default());
    let config = consumer_config(&brokers, &topic, &dlq_topic, &group);
    let metrics = ConsumerMetrics::unregistered().expect("metrics");
    consume_until_handled(config, &recorder, &metrics, first.len(), false).await;

    let handled = recorder.handled();
    assert_eq!(handled.len(), first.len(), "each event handed once");
    let in_order: Vec<u64> = (1..=20).collect();
    for (wallet, versions) in versions_by_wallet(&handled) {
        assert_eq!(versions, in_order, "{wallet}'s events in order");
    }
    let batches = *recorder.batches.lock().expect("recorder lock");
    assert!(
        batches < first.len(),
        "events come in batches ({batches} batches for {} events)",
        first.len()
    );

    // More events; a restarted consumer of the same group sees only those.
    let second = interleaved_log(&format!("{run}b"), 5, 5, 101);
    produce(&brokers, &topic, &second).await;
    let restarted = Arc::new(Recorder::default());
    let config = consumer_config(&brokers, &topic, &dlq_topic, &group);
    consume_until_handled(config, &restarted, &metrics, second.len(), true).await;
    let handled: BTreeSet<Uuid> = restarted
        .handled()
        .iter()
        .map(|event| event.event.event_id)
        .collect();
    let expected: BTreeSet<Uuid> = second.iter().map(|event| event.event.event_id).collect();
    assert_eq!(
        restarted.handled_count(),
        second.len(),
        "nothing handed twice"
    );
    assert_eq!(handled, expected, "only what was not committed before");
}

#[tokio::test]
async fn transient_failures_are_retried_until_they_pass_and_nothing_is_dead_lettered() {
    let Some(brokers) = require_env("KAFKA_BROKERS") else {
        return;
    };
    let log = interleaved_log(&unique_name("run"), 3, 5, 1);
    let config = fresh_consumer(&brokers, "wallex_it_flaky", &log).await;
    assert!(TRANSIENT_FAILURES > config.handler_attempts_max as usize);
    let metrics = ConsumerMetrics::unregistered().expect("metrics");
    let recorder = Arc::new(Recorder::flaky(TRANSIENT_FAILURES));
    consume_until_handled(config, &recorder, &metrics, log.len(), true).await;

    let handled: BTreeSet<Uuid> = recorder
        .handled()
        .iter()
        .map(|event| event.event.event_id)
        .collect();
    let expected: BTreeSet<Uuid> = log.iter().map(|event| event.event.event_id).collect();
    assert_eq!(
        recorder.handled_count(),
        log.len(),
        "each event handled once"
    );
    assert_eq!(handled, expected);
    assert_eq!(
        metrics.dead_lettered.with_label_values(&[HANDLER]).get(),
        0,
        "nothing dead-lettered"
    );
    assert!(
        metrics.retries.with_label_values(&[HANDLER]).get() >= TRANSIENT_FAILURES as u64,
        "every transient failure was retried"
    );
    assert!(!metrics.is_retrying(), "no longer retrying once it passed");
}

#[tokio::test]
async fn a_handler_call_that_hangs_is_cut_short_and_retried_and_nothing_is_dead_lettered() {
    let Some(brokers) = require_env("KAFKA_BROKERS") else {
        return;
    };
    let log = interleaved_log(&unique_name("run"), 3, 5, 1);
    let mut config = fresh_consumer(&brokers, "wallex_it_hang", &log).await;
    config.handler_timeout_ms = 500;
    let metrics = ConsumerMetrics::unregistered().expect("metrics");
    let hangs = config.handler_attempts_max as usize + 1;
    let recorder = Arc::new(Recorder::hanging(hangs));
    consume_until_handled(config, &recorder, &metrics, log.len(), true).await;

    assert_eq!(
        recorder.handled_count(),
        log.len(),
        "each event handled once"
    );
    assert_eq!(
        metrics.dead_lettered.with_label_values(&[HANDLER]).get(),
        0,
        "a call that hung is transient: nothing dead-lettered, however many"
    );
    assert!(
        metrics.retries.with_label_values(&[HANDLER]).get() >= hangs as u64,
        "every call cut short was retried"
    );
}

/// The lag gauges of `HANDLER`, summed over the topic's partitions.
fn lag(metrics: &ConsumerMetrics) -> i64 {
    (0..TOPIC_PARTITIONS)
        .map(|partition| {
            metrics
                .lag
                .with_label_values(&[HANDLER, &partition.to_string()])
                .get()
        })
        .sum()
}

/// Transient failures of the lag test's handler: with the test's backoff
/// (at most 50 ms), they hold the group for longer than one refresh interval.
const HELD_FAILURES: usize = 200;

#[tokio::test]
async fn the_lag_gauges_show_a_held_group_and_reach_zero_once_it_caught_up() {
    let Some(brokers) = require_env("KAFKA_BROKERS") else {
        return;
    };
    let log = interleaved_log(&unique_name("run"), 4, 5, 1);
    let config = fresh_consumer(&brokers, "wallex_it_held", &log).await;
    let metrics = ConsumerMetrics::unregistered().expect("metrics");
    let recorder = Arc::new(Recorder::flaky(HELD_FAILURES));
    let (stop, stopping) = watch::channel(false);
    let consumer = tokio::spawn(run_consumer_with_metrics(
        config,
        recorder.clone(),
        metrics.clone(),
        stopping,
    ));
    let expected = i64::try_from(log.len()).expect("a small log");
    wait_until("the lag gauges show every message waiting", || {
        lag(&metrics) == expected || recorder.handled_count() > 0
    })
    .await;
    assert_eq!(
        recorder.handled_count(),
        0,
        "the gauges showed the held group before its batch passed"
    );
    wait_until("every event is handled", || {
        recorder.handled_count() >= log.len()
    })
    .await;
    wait_until("the lag gauges read 0 once it caught up", || {
        lag(&metrics) == 0
    })
    .await;
    stop.send_replace(true);
    consumer
        .await
        .expect("the consumer task ends")
        .expect("the consumer stops cleanly");
}

#[tokio::test]
async fn a_message_the_handler_refuses_goes_to_the_dlq_and_replay_puts_it_back() {
    let Some(brokers) = require_env("KAFKA_BROKERS") else {
        return;
    };
    let topic = create_topic(&brokers, "wallex_it_poison", TOPIC_PARTITIONS).await;
    let dlq_topic = create_topic(&brokers, "wallex_it_poison_dlq", 1).await;
    let group = unique_name("wallex_it_group");
    let run = unique_name("run");
    let log = interleaved_log(&run, 3, 5, 1);
    let poisoned = log[7].clone();
    produce(&brokers, &topic, &log).await;
    produce_raw(&brokers, &topic, "garbage", "not an event").await;

    let config = consumer_config(&brokers, &topic, &dlq_topic, &group);
    let metrics = ConsumerMetrics::unregistered().expect("metrics");
    let recorder = Arc::new(Recorder::poisoned(poisoned.event.event_id));
    let (stop, stopping) = watch::channel(false);
    let consumer = tokio::spawn(run_consumer_with_metrics(
        config.clone(),
        recorder.clone(),
        metrics.clone(),
        stopping,
    ));
    let dead_lettered = metrics.dead_lettered.with_label_values(&["recorder"]);
    wait_until(
        "every other event is handled and two are dead-lettered",
        || recorder.handled_count() >= log.len() - 1 && dead_lettered.get() >= 2,
    )
    .await;
    tokio::time::sleep(QUIET_PERIOD).await;
    stop.send_replace(true);
    consumer
        .await
        .expect("the consumer task ends")
        .expect("the consumer stops cleanly");

    let handled = recorder.handled();
    assert_eq!(
        handled.len(),
        log.len() - 1,
        "the rest are handled, once each"
    );
    assert!(handled
        .iter()
        .all(|event| event.event.event_id != poisoned.event.event_id));
    for (wallet, versions) in versions_by_wallet(&handled) {
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        assert_eq!(versions, sorted, "{wallet}'s events in order");
    }
    assert_eq!(dead_lettered.get(), 2);
    assert!(
        metrics.retries.with_label_values(&["recorder"]).get() > 0,
        "the failing batch was retried"
    );

    let letters = read_topic(&brokers, &dlq_topic, 2).await;
    assert_eq!(letters.len(), 2, "exactly the two messages are on the DLQ");
    let poison_letter = letters
        .iter()
        .find(|letter| letter.key() == Some(poisoned.event.wallet_id.as_str().as_bytes()))
        .expect("the poisoned event is on the DLQ");
    let value = std::str::from_utf8(poison_letter.payload().expect("a value")).expect("UTF-8");
    assert_eq!(
        RecordedEvent::from_json(value).expect("the original value"),
        poisoned
    );
    let error = header(poison_letter, "error").expect("an error header");
    assert!(error.contains("poisoned event"), "error header: {error}");
    assert_eq!(
        header(poison_letter, "handler").as_deref(),
        Some("recorder")
    );
    assert_eq!(header(poison_letter, "source-topic"), Some(topic.clone()));
    assert!(header(poison_letter, "source-partition").is_some());
    assert!(header(poison_letter, "source-offset").is_some());
    let garbage_letter = letters
        .iter()
        .find(|letter| letter.key() == Some(b"garbage".as_slice()))
        .expect("the undecodable message is on the DLQ");
    let error = header(garbage_letter, "error").expect("an error header");
    assert!(error.starts_with("undecodable"), "error header: {error}");

    // The cause is fixed: replay puts both back; the event is handled, the garbage parked again.
    assert_eq!(waiting(&config).await, 2, "both wait for a replay");
    assert_eq!(replay_dlq(&config, HANDLER, 100).await.expect("replay"), 2);
    assert_eq!(waiting(&config).await, 0, "none waits once replayed");
    assert_eq!(
        replay_dlq(&config, HANDLER, 100).await.expect("replay"),
        0,
        "a replay commits what it replayed"
    );
    let fixed = Arc::new(Recorder::default());
    let metrics = ConsumerMetrics::unregistered().expect("metrics");
    let (stop, stopping) = watch::channel(false);
    let consumer = tokio::spawn(run_consumer_with_metrics(
        config.clone(),
        fixed.clone(),
        metrics.clone(),
        stopping,
    ));
    let dead_lettered = metrics.dead_lettered.with_label_values(&["recorder"]);
    wait_until("the replayed event is handled", || {
        fixed.handled_count() >= 1 && dead_lettered.get() >= 1
    })
    .await;
    tokio::time::sleep(QUIET_PERIOD).await;
    stop.send_replace(true);
    consumer
        .await
        .expect("the consumer task ends")
        .expect("the consumer stops cleanly");
    assert_eq!(
        fixed.handled(),
        vec![poisoned],
        "only the replayed event comes again"
    );
    assert_eq!(dead_lettered.get(), 1, "the garbage is parked again");
    assert_eq!(
        waiting(&config).await,
        1,
        "only the letter parked again waits, not the topic's three"
    );
}

/// Dead letters the next replay of `config`'s group would read.
async fn waiting(config: &ConsumerConfig) -> i64 {
    dead_letters_to_replay(config)
        .await
        .expect("the replay group's offsets and the DLQ's watermarks")
}

/// A dead letter replayed for another handler is passed by, decodable or
/// not: this handler took it (or parked its own copy) when it first came, so
/// one handler's replay never parks a letter again for the other.
#[tokio::test]
async fn a_letter_replayed_for_another_handler_is_passed_by() {
    let Some(brokers) = require_env("KAFKA_BROKERS") else {
        return;
    };
    let topic = create_topic(&brokers, "wallex_it_replayed_other", TOPIC_PARTITIONS).await;
    let dlq_topic = create_topic(&brokers, "wallex_it_replayed_other_dlq", 1).await;
    let group = unique_name("wallex_it_group");
    let run = unique_name("run");
    let log = interleaved_log(&run, 2, 3, 1);
    let for_another = [(HEADER_REPLAYED_FOR, "another-handler")];
    produce_raw_with_headers(&brokers, &topic, "garbage", "not an event", &for_another).await;
    let replayed = log[0].to_json().expect("the event encodes");
    let wallet = log[0].event.wallet_id.as_str().to_owned();
    produce_raw_with_headers(&brokers, &topic, &wallet, &replayed, &for_another).await;
    produce(&brokers, &topic, &log).await;

    let config = consumer_config(&brokers, &topic, &dlq_topic, &group);
    let metrics = ConsumerMetrics::unregistered().expect("metrics");
    let recorder = Arc::new(Recorder::default());
    consume_until(
        &config,
        Arc::clone(&recorder),
        &metrics,
        "the log is handled",
        QUIET_PERIOD,
        || recorder.handled_count() >= log.len(),
    )
    .await;
    assert_eq!(
        metrics.dead_lettered.with_label_values(&[HANDLER]).get(),
        0,
        "nothing parked for a replay that is not this handler's"
    );
    let ids = |events: &[RecordedEvent]| {
        let mut ids: Vec<_> = events.iter().map(|event| event.event.event_id).collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(
        ids(&recorder.handled()),
        ids(&log),
        "the log once, without the letters replayed for another"
    );
}

/// Runs a consumer with `handler` until `condition` holds (it says `what`),
/// then for `quiet` more, then stops it; its counters go to `metrics`.
async fn consume_until(
    config: &ConsumerConfig,
    handler: Arc<Recorder>,
    metrics: &ConsumerMetrics,
    what: &str,
    quiet: Duration,
    condition: impl FnMut() -> bool,
) {
    let (stop, stopping) = watch::channel(false);
    let consumer = tokio::spawn(run_consumer_with_metrics(
        config.clone(),
        handler,
        metrics.clone(),
        stopping,
    ));
    wait_until(what, condition).await;
    tokio::time::sleep(quiet).await;
    stop.send_replace(true);
    consumer
        .await
        .expect("the consumer task ends")
        .expect("the consumer stops cleanly");
}

async fn parked_letters(pool: &sqlx::PgPool) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT wallet_id, letters FROM bus_parked_wallets WHERE handler = $1")
        .bind(HANDLER)
        .fetch_all(pool)
        .await
        .expect("read the parked wallets")
}

/// A case of wallets parked behind a dead letter: a migrated database of
/// its own (kept until the case ends), a fresh topic and dead-letter topic
/// named after the case, a group and a run of their own.
struct ParkedCase {
    brokers: String,
    pool: sqlx::PgPool,
    _database: TestDatabase,
    topic: String,
    dlq_topic: String,
    group: String,
    run: String,
}

impl ParkedCase {
    /// The case's servers and names, its topics named after `prefix`;
    /// `None` (the case is skipped) without Kafka or PostgreSQL.
    async fn start(prefix: &str) -> Option<Self> {
        let (Some(brokers), Some(url)) =
            (require_env("KAFKA_BROKERS"), require_env("DATABASE_URL"))
        else {
            return None;
        };
        let database = TestDatabase::create(&url).await;
        let pool = postgres_support::connect(&database.url, POOL_CONNECTIONS_MAX)
            .await
            .expect("connect and migrate the test database");
        let topic = create_topic(&brokers, prefix, TOPIC_PARTITIONS).await;
        let dlq_topic = create_topic(&brokers, &format!("{prefix}_dlq"), 1).await;
        Some(Self {
            brokers,
            pool,
            _database: database,
            topic,
            dlq_topic,
            group: unique_name("wallex_it_group"),
            run: unique_name("run"),
        })
    }

    /// A consumer of the case's topic in its group, keeping its parked
    /// wallets in the case's database.
    fn config(&self) -> ConsumerConfig {
        let mut config = consumer_config(&self.brokers, &self.topic, &self.dlq_topic, &self.group);
        config.parked = Some(ParkedWallets::new(self.pool.clone()));
        config
    }
}

#[tokio::test]
async fn a_wallets_events_after_a_dead_letter_are_parked_behind_it_and_replayed_in_order() {
    let Some(case) = ParkedCase::start("wallex_it_parked").await else {
        return;
    };
    let (brokers, pool) = (&case.brokers, &case.pool);
    // w0 v1, w1 v1, w0 v2 (refused for good), w1 v2, w0 v3, w1 v3, w0 v4, w1 v4.
    let log = interleaved_log(&case.run, 2, 4, 1);
    let poisoned = log[2].clone();
    let parked_wallet = poisoned.event.wallet_id.to_string();
    produce(brokers, &case.topic, &log).await;
    let config = case.config();

    let recorder = Arc::new(Recorder::poisoned(poisoned.event.event_id));
    let dead_lettered = consume_until_parked(
        &config,
        &recorder,
        "the other wallet flows and w0 from v2 on is parked",
        5,
        3,
    )
    .await;

    let handled = versions_by_wallet(&recorder.handled());
    let other_wallet = log[1].event.wallet_id.to_string();
    assert_eq!(
        handled[&parked_wallet],
        vec![1],
        "w0 stops before its dead letter"
    );
    assert_eq!(handled[&other_wallet], vec![1, 2, 3, 4], "not blocked");
    assert_eq!(dead_lettered, 3);
    let letters = read_topic(brokers, &case.dlq_topic, 3).await;
    let parked_versions: Vec<u64> = letters
        .iter()
        .map(|letter| {
            assert_eq!(
                letter.key(),
                Some(parked_wallet.as_bytes()),
                "keyed by wallet"
            );
            let value = std::str::from_utf8(letter.payload().expect("a value")).expect("UTF-8");
            RecordedEvent::from_json(value)
                .expect("an event")
                .stream_version
        })
        .collect();
    assert_eq!(parked_versions, vec![2, 3, 4], "parked in order");
    let behind = header(&letters[1], "error").expect("an error header");
    assert!(behind.contains("earlier event"), "error header: {behind}");
    assert_eq!(parked_letters(pool).await, vec![(parked_wallet.clone(), 3)]);

    // The cause is fixed: a replay re-applies w0's letters in order and w0 flows again.
    assert_eq!(replay_dlq(&config, HANDLER, 100).await.expect("replay"), 3);
    let fixed = Arc::new(Recorder::default());
    let dead_lettered =
        consume_until_parked(&config, &fixed, "the replayed letters are handled", 3, 0).await;
    let replayed = versions_by_wallet(&fixed.handled());
    assert_eq!(replayed[&parked_wallet], vec![2, 3, 4], "in order");
    assert_eq!(dead_lettered, 0, "nothing parked again");
    assert!(
        parked_letters(pool).await.is_empty(),
        "w0 is no longer parked"
    );
}

#[tokio::test]
async fn an_unknown_schema_version_parks_its_wallets_later_events_not_its_earlier_ones() {
    let Some(case) = ParkedCase::start("wallex_it_future_parked").await else {
        return;
    };
    let (brokers, topic) = (&case.brokers, &case.topic);
    // w0 v1, w1 v1, w0 v2 (written by a newer build), w1 v2, w0 v3, w1 v3: one batch.
    let log = interleaved_log(&case.run, 2, 3, 1);
    let wallet = log[0].event.wallet_id.to_string();
    let current = log[2].to_json().expect("the event encodes");
    let future = current.replace("\"schemaVersion\":1", "\"schemaVersion\":2");
    assert_ne!(future, current, "the schema version is in the JSON");
    produce(brokers, topic, &log[..2]).await;
    produce_raw(brokers, topic, &wallet, &future).await;
    produce(brokers, topic, &log[3..]).await;
    let config = case.config();

    let recorder = Arc::new(Recorder::default());
    consume_until_parked(
        &config,
        &recorder,
        "w1 and w0 v1 handled, w0 from v2 on parked",
        4,
        2,
    )
    .await;

    let handled = versions_by_wallet(&recorder.handled());
    assert_eq!(handled[&wallet], vec![1], "the earlier event is handled");
    assert_eq!(handled[&log[1].event.wallet_id.to_string()], vec![1, 2, 3]);
    let letters = read_topic(brokers, &case.dlq_topic, 2).await;
    assert_eq!(
        letters[0].payload(),
        Some(future.as_bytes()),
        "the newer one first"
    );
    let behind = header(&letters[1], "error").expect("an error header");
    assert!(
        behind.contains("earlier event"),
        "then v3 behind it: {behind}"
    );
    assert_eq!(parked_letters(&case.pool).await, vec![(wallet, 2)]);
}

#[tokio::test]
async fn an_event_of_an_unknown_schema_version_is_parked_and_counted_without_blocking_its_partition(
) {
    let Some(brokers) = require_env("KAFKA_BROKERS") else {
        return;
    };
    let topic = create_topic(&brokers, "wallex_it_future", TOPIC_PARTITIONS).await;
    let dlq_topic = create_topic(&brokers, "wallex_it_future_dlq", 1).await;
    let group = unique_name("wallex_it_group");
    let run = unique_name("run");
    let log = interleaved_log(&run, 2, 3, 1);
    // A newer writer's event (a rolling upgrade), first on its wallet's partition.
    let current = log[0].to_json().expect("the event encodes");
    let future = current.replace("\"schemaVersion\":1", "\"schemaVersion\":2");
    assert_ne!(future, current, "the schema version is in the JSON");
    let wallet = log[0].event.wallet_id.as_str().to_owned();
    produce_raw(&brokers, &topic, &wallet, &future).await;
    produce(&brokers, &topic, &log).await;

    let config = consumer_config(&brokers, &topic, &dlq_topic, &group);
    let metrics = ConsumerMetrics::unregistered().expect("metrics");
    let recorder = Arc::new(Recorder::default());
    let (stop, stopping) = watch::channel(false);
    let consumer = tokio::spawn(run_consumer_with_metrics(
        config.clone(),
        recorder.clone(),
        metrics.clone(),
        stopping,
    ));
    let parked = metrics
        .unknown_schema_parked
        .with_label_values(&["recorder"]);
    wait_until("the log is handled and the newer event parked", || {
        recorder.handled_count() >= log.len() && parked.get() >= 1
    })
    .await;
    stop.send_replace(true);
    consumer
        .await
        .expect("the consumer task ends")
        .expect("the consumer stops cleanly");

    assert_eq!(
        recorder.handled_count(),
        log.len(),
        "every known event is handled"
    );
    assert_eq!(parked.get(), 1);
    let letters = read_topic(&brokers, &dlq_topic, 1).await;
    assert_eq!(
        letters[0].payload(),
        Some(future.as_bytes()),
        "parked as it came"
    );
    let error = header(&letters[0], "error").expect("an error header");
    assert!(error.contains("schema version 2"), "error header: {error}");
}

#[tokio::test]
async fn the_relay_publishes_an_event_of_a_newer_schema_version_as_stored_and_later_events_follow()
{
    let (Some(brokers), Some(url)) = (require_env("KAFKA_BROKERS"), require_env("DATABASE_URL"))
    else {
        return;
    };
    let publishing = Publishing::create(&brokers, &url, "wallex_it_stored").await;
    let (pool, topic, publisher) = (&publishing.pool, &publishing.topic, &publishing.publisher);
    let store = PostgresEventStore::connect(pool.clone())
        .await
        .expect("the event store");
    let wallet = WalletId::parse(&unique_name("w")).expect("wallet id");
    let before = continue_history(&wallet, &[], 2);
    append_to(&store, before.clone(), 0).await;
    // A newer build's event (a rolling upgrade), written as that build would.
    let newer_id = Uuid::now_v7();
    let newer_wallet = unique_name("w-newer");
    let newer = format!(
        r#"{{"type":"WalletCreated","schemaVersion":2,"eventId":"{newer_id}","walletId":"{newer_wallet}","occurredAt":"2026-11-30T12:00:00Z","amount":"5.00","balanceAfter":"5.00","currency":"EUR","metadata":{{}}}}"#
    );
    sqlx::query(
        "INSERT INTO events (position, event_id, stream_id, version, event_type, payload) \
         VALUES (nextval('event_positions'), $1, $2, 1, 'WalletCreated', $3)",
    )
    .bind(newer_id)
    .bind(&newer_wallet)
    .bind(&newer)
    .execute(pool)
    .await
    .expect("write the newer event");
    append_to(&store, continue_history(&wallet, &before, 1), 2).await;

    let last = event_relay::drain(&store, publisher, RELAY_BATCH_SIZE_MAX, RELAY_BATCHES_MAX)
        .await
        .expect("the relay publishes every stored event");
    assert_eq!(last, 4);

    let messages = read_topic(&brokers, topic, 4).await;
    assert_eq!(messages.len(), 4, "each event once");
    let newer_message = messages
        .iter()
        .find(|message| message.key() == Some(newer_wallet.as_bytes()))
        .expect("the newer event is published, keyed by its wallet");
    let envelope: serde_json::Value =
        serde_json::from_slice(newer_message.payload().expect("a value"))
            .expect("the value is JSON");
    assert_eq!(
        serde_json::to_string(&envelope["event"]).expect("JSON"),
        serde_json::to_string(&serde_json::from_str::<serde_json::Value>(&newer).expect("JSON"))
            .expect("JSON"),
        "the stored event inside the envelope"
    );
    assert_eq!(envelope["position"], 3);
    assert_eq!(
        header(newer_message, "schema-version").as_deref(),
        Some("2")
    );
    assert_eq!(
        header(newer_message, "event-id"),
        Some(newer_id.to_string())
    );
    let mut versions: Vec<u64> = messages
        .iter()
        .filter(|message| message.key() == Some(wallet.as_str().as_bytes()))
        .map(|message| {
            let value = std::str::from_utf8(message.payload().expect("a value")).expect("UTF-8");
            RecordedEvent::from_json(value)
                .expect("this build's events decode")
                .stream_version
        })
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, vec![1, 2, 3], "the events after it follow");
    drop(store);
    publishing.drop_all().await;
}

async fn append_to(store: &PostgresEventStore, events: Vec<WalletEvent>, expected_version: u64) {
    let wallet_id = events[0].wallet_id.clone();
    store
        .append(AppendRequest {
            streams: vec![StreamAppend {
                wallet_id,
                expected_version,
                expected_last_event_id: None,
                events,
            }],
            idempotent_response: None,
        })
        .await
        .expect("append");
}

/// Members of `HANDLER` given up for a new one, for `reason`.
fn replaced(metrics: &ConsumerMetrics, reason: &str) -> u64 {
    metrics
        .members_replaced
        .with_label_values(&[HANDLER, reason])
        .get()
}

/// Every reason a member of `HANDLER` was given up, summed.
fn replaced_for_any_reason(metrics: &ConsumerMetrics) -> u64 {
    [
        "fatal",
        "not_coordinator",
        "partition_stalled",
        "out_of_group",
    ]
    .iter()
    .map(|reason| replaced(metrics, reason))
    .sum()
}

/// Room past a stall bound for the refreshes (5 s apart) and the loop's turn.
const STALL_BOUND_SLACK: Duration = Duration::from_secs(20);

/// A member of the group that holds its partitions and never commits (it
/// polls, so it stays in the group and serves its rebalances): the group's
/// messages wait on it for good. Its `client.id` makes its member id sort
/// before the loop's (`rdkafka-...`), so the range assignor gives it the
/// only partition of a one-partition topic.
struct HoldingMember {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl HoldingMember {
    async fn join(brokers: &str, group: &str, topic: &str) -> Self {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("client.id", "a_holding_member")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("an rdkafka consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let (stop, mut stopping) = watch::channel(false);
        let (joined, mut assigned) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = consumer.recv() => {}
                    _ = tokio::time::sleep(WAIT_POLL) => {}
                    _ = stopping.changed() => break,
                }
                let holds = consumer
                    .assignment()
                    .is_ok_and(|assignment| assignment.count() > 0);
                joined.send_replace(holds);
            }
            tokio::task::spawn_blocking(move || drop(consumer))
                .await
                .expect("the holding member closes");
        });
        tokio::time::timeout(WAIT_TIMEOUT, assigned.wait_for(|holds| *holds))
            .await
            .expect("the holding member is assigned the partition in time")
            .expect("the holding member runs");
        Self { stop, task }
    }

    async fn leave(self) {
        self.stop.send_replace(true);
        self.task.await.expect("the holding member ends");
    }
}

/// The fault suite's silent member had no partition while its group's
/// messages waited: a member given none while another holds the group's
/// only partition without ever committing is given up within the
/// out-of-group bound (its predecessor's lag, summed over its own
/// partitions, was 0 for good).
#[tokio::test]
async fn a_member_holding_no_partition_while_its_groups_messages_wait_unconsumed_is_replaced() {
    let Some(brokers) = require_env("KAFKA_BROKERS") else {
        return;
    };
    let topic = create_topic(&brokers, "wallex_it_unheld", 1).await;
    let dlq_topic = create_topic(&brokers, "wallex_it_unheld_dlq", 1).await;
    let group = unique_name("wallex_it_group");
    let holding = HoldingMember::join(&brokers, &group, &topic).await;
    produce(
        &brokers,
        &topic,
        &interleaved_log(&unique_name("run"), 2, 3, 1),
    )
    .await;

    let config = consumer_config(&brokers, &topic, &dlq_topic, &group);
    let recorder = Arc::new(Recorder::default());
    let metrics = ConsumerMetrics::unregistered().expect("metrics");
    let (stop, stopping) = watch::channel(false);
    let consumer = tokio::spawn(run_consumer_with_metrics(
        config,
        Arc::clone(&recorder) as Arc<dyn EventSink>,
        metrics.clone(),
        stopping,
    ));
    let bound = Duration::from_millis(event_bus::MEMBER_OUT_OF_GROUP_MAX_MS) + STALL_BOUND_SLACK;
    let started = tokio::time::Instant::now();
    while replaced(&metrics, "out_of_group") == 0 {
        assert!(
            started.elapsed() < bound,
            "a member with no partition was not replaced within {} s while the group's messages waited",
            bound.as_secs()
        );
        tokio::time::sleep(WAIT_POLL).await;
    }
    assert_eq!(
        recorder.handled_count(),
        0,
        "the other member held the partition"
    );
    stop.send_replace(true);
    consumer
        .await
        .expect("the consumer task ends")
        .expect("the consumer stops cleanly");
    holding.leave().await;
}

/// A member busy retrying a batch (its store away) for longer than the
/// stall bounds takes nothing meanwhile, by design: it is not a stalled
/// member, and is not replaced (the watch counts only the loop's idle time).
#[tokio::test]
async fn a_member_retrying_a_batch_past_the_stall_bound_is_not_replaced() {
    let Some(brokers) = require_env("KAFKA_BROKERS") else {
        return;
    };
    let log = interleaved_log(&unique_name("run"), 4, 5, 1);
    let config = fresh_consumer(&brokers, "wallex_it_busy", &log).await;
    let away = Duration::from_millis(event_bus::MEMBER_STALL_MAX_MS) + STALL_BOUND_SLACK;
    let recorder = Arc::new(Recorder::failing_for(away));
    let metrics = ConsumerMetrics::unregistered().expect("metrics");
    let (stop, stopping) = watch::channel(false);
    let consumer = tokio::spawn(run_consumer_with_metrics(
        config,
        Arc::clone(&recorder) as Arc<dyn EventSink>,
        metrics.clone(),
        stopping,
    ));
    let deadline = tokio::time::Instant::now() + away + WAIT_TIMEOUT;
    while recorder.handled_count() < log.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {} events handled once the store was back",
            recorder.handled_count(),
            log.len()
        );
        tokio::time::sleep(WAIT_POLL).await;
    }
    assert_eq!(
        replaced_for_any_reason(&metrics),
        0,
        "a member busy retrying is not replaced"
    );
    assert!(
        metrics.retries.with_label_values(&[HANDLER]).get() > 0,
        "the batch was retried meanwhile"
    );
    stop.send_replace(true);
    consumer
        .await
        .expect("the consumer task ends")
        .expect("the consumer stops cleanly");
}
