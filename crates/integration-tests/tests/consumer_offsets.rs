//! Consumer offsets kept in PostgreSQL, against real PostgreSQL and Kafka: the ledger
//! consumer's loop with the PostgreSQL ledger, each test on a database, a one-partition
//! topic (so that offset `i` is the log's event `i`) and consumer groups of its own.
//!
//! - PostgreSQL losing the last transactions (simulated: the stored offset moved back and
//!   the rows those transactions wrote deleted) while the consumer runs: its next batch is
//!   refused, it seeks to the stored offset, and the lost messages are posted again,
//!   nothing lost and nothing twice, although Kafka's committed offset is past them.
//! - The same loss while the consumer is stopped: on restart the stored offset rules.
//! - A stored offset ahead of Kafka's committed one: what is below it is not handed again.
//! - A sink whose step after the offsets fails once (as the projection's search index
//!   after its read model stored them): the batch is handed again, not sought past.
//! - A sink that refuses the partition's last message for good: it is parked once, and
//!   the stored offset moves past it, so the next message does not bring it back.
//! - A stored offset below what retention kept: the consumer takes the partition from
//!   its first kept message instead of seeking back to the stored offset for ever.
//! - A stored offset above the partition's end (the topic deleted and created again):
//!   the consumer takes the partition again from its start instead of skipping every
//!   new message as applied.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use event_bus::{run_consumer_with_metrics, ConsumerConfig, ConsumerMetrics};
use event_sink::{ConsumerOffsets, DeliveryError, EventSink, StoredOffsets};
use event_store::RecordedEvent;
use integration_tests::{create_topic, produce, require_env, unique_name, TestDatabase};
use ledger::conformance::EventLog;
use ledger::{Ledger, PostgresLedger};
use ledger_consumer::{LedgerHandler, Metrics};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Bound on any wait for the consumer to post what was produced.
const WAIT_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a waiting test looks again.
const WAIT_POLL: Duration = Duration::from_millis(100);
/// After the expected events were posted, how long a test watches for more.
const QUIET_PERIOD: Duration = Duration::from_secs(2);
const POOL_CONNECTIONS_MAX: u32 = 4;
/// Events of the first part of the log.
const FIRST_EVENTS: usize = 40;
/// Events of the first part PostgreSQL "loses".
const LOST_EVENTS: usize = 15;
/// Events produced after the loss.
const LATER_EVENTS: usize = 10;

/// A log of two wallets and `credits` credits after their creation.
fn log_of(credits: usize) -> EventLog {
    let mut log = EventLog::default();
    log.create("w-a", "100.00");
    log.create("w-b", "0");
    for index in 0..credits {
        let wallet = if index % 2 == 0 { "w-a" } else { "w-b" };
        log.credit(wallet, "1.25");
    }
    log
}

/// A test's servers: its database, ledger, topic and brokers.
struct Servers {
    database: TestDatabase,
    pool: PgPool,
    ledger: Arc<PostgresLedger>,
    brokers: String,
    topic: String,
    dlq_topic: String,
}

impl Servers {
    async fn start() -> Option<Self> {
        let database_url = require_env("DATABASE_URL")?;
        let brokers = require_env("KAFKA_BROKERS")?;
        let database = TestDatabase::create(&database_url).await;
        let pool = postgres_support::connect(&database.url, POOL_CONNECTIONS_MAX)
            .await
            .expect("connect and migrate the test database");
        let topic = create_topic(&brokers, "wallex_it_offsets", 1).await;
        let dlq_topic = create_topic(&brokers, "wallex_it_offsets_dlq", 1).await;
        Some(Self {
            ledger: Arc::new(PostgresLedger::new(pool.clone())),
            database,
            pool,
            brokers,
            topic,
            dlq_topic,
        })
    }

    /// Runs the ledger's consumer loop in `group`; its handler counts what it posts.
    fn consume(&self, group: &str) -> Consuming {
        self.consume_as(group, None)
    }

    /// [`Self::consume`] as the static member `instance` when given.
    fn consume_as(&self, group: &str, instance: Option<&str>) -> Consuming {
        let metrics = Metrics::new().expect("metrics");
        let handler = Arc::new(LedgerHandler::new(self.ledger.clone(), metrics.clone()));
        self.consume_into(group, instance, handler, metrics)
    }

    /// Runs the consumer loop in `group` (as the static member `instance`
    /// when given) with `handler`; `metrics` are the ledger's.
    fn consume_into(
        &self,
        group: &str,
        instance: Option<&str>,
        handler: Arc<dyn EventSink>,
        metrics: Metrics,
    ) -> Consuming {
        let mut config = ConsumerConfig::new(&self.brokers, group);
        config.topic = self.topic.clone();
        config.dlq_topic = self.dlq_topic.clone();
        config.handler_backoff_initial_ms = 10;
        config.handler_backoff_max_ms = 50;
        config.session_timeout_ms = 6_000;
        config.group_instance_id = instance.map(str::to_owned);
        let (stop, stopping) = watch::channel(false);
        let consumer_metrics = ConsumerMetrics::unregistered().expect("consumer metrics");
        let loop_metrics = consumer_metrics.clone();
        let task = tokio::spawn(async move {
            run_consumer_with_metrics(config, handler, loop_metrics, stopping)
                .await
                .map_err(|error| error.to_string())
        });
        Consuming {
            metrics,
            consumer_metrics,
            stop,
            task,
        }
    }

    async fn events_posted(&self) -> u64 {
        self.ledger.verify().await.expect("verify").events_posted
    }

    async fn wait_posted(&self, events: usize) {
        let deadline = tokio::time::Instant::now() + WAIT_TIMEOUT;
        while self.events_posted().await < events as u64 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {events} events posted ({} are)",
                self.events_posted().await
            );
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    async fn stored_offset(&self, group: &str) -> Option<i64> {
        sqlx::query_scalar(
            "SELECT next_offset FROM consumer_offsets \
             WHERE consumer_group = $1 AND topic = $2 AND partition = 0",
        )
        .bind(group)
        .bind(&self.topic)
        .fetch_optional(&self.pool)
        .await
        .expect("read the stored offset")
    }

    /// Stores `next` as `group`'s offset of the topic's partition, as its sink would.
    async fn store_offset(&self, group: &str, next: usize) {
        sqlx::query(
            "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset) \
             VALUES ($1, $2, 0, $3)",
        )
        .bind(group)
        .bind(&self.topic)
        .bind(i64::try_from(next).expect("a small offset"))
        .execute(&self.pool)
        .await
        .expect("store the group's offset");
    }

    /// What an asynchronous replica's failover does to the ledger consumer's last
    /// transactions: the offset goes back to `kept` and the rows of the events from
    /// `kept` on are gone.
    async fn lose_transactions(&self, group: &str, log: &[RecordedEvent], kept: usize) {
        let first_lost = i64::try_from(log[kept].position).expect("a small position");
        let mut transaction = self.pool.begin().await.expect("begin");
        for statement in [
            "DELETE FROM ledger_entries WHERE position >= $1",
            "DELETE FROM ledger_transactions WHERE position >= $1",
            "DELETE FROM ledger_processed_events WHERE position >= $1",
            "UPDATE ledger_checkpoint SET position = $1 - 1",
        ] {
            sqlx::query(statement)
                .bind(first_lost)
                .execute(&mut *transaction)
                .await
                .expect("lose the transaction's rows");
        }
        sqlx::query(
            "UPDATE consumer_offsets SET next_offset = $3 \
             WHERE consumer_group = $1 AND topic = $2 AND partition = 0",
        )
        .bind(group)
        .bind(&self.topic)
        .bind(i64::try_from(kept).expect("a small offset"))
        .execute(&mut *transaction)
        .await
        .expect("move the offset back");
        transaction.commit().await.expect("commit");
    }
}

/// A running consumer loop.
struct Consuming {
    metrics: Metrics,
    /// The loop's own counters.
    consumer_metrics: ConsumerMetrics,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), String>>,
}

impl Consuming {
    async fn stop(self) -> Metrics {
        self.stop.send_replace(true);
        self.task
            .await
            .expect("the consumer task ends")
            .expect("the consumer stops cleanly");
        self.metrics
    }

    /// Waits until `events` are posted, then stops.
    async fn stop_after_posted(self, servers: &Servers, events: usize) -> Metrics {
        servers.wait_posted(events).await;
        self.stop().await
    }
}

/// The ledger holds exactly the events of `log`, each once, balanced.
async fn assert_ledger_holds(servers: &Servers, log: &[RecordedEvent]) {
    let verification = servers.ledger.verify().await.expect("verify");
    assert!(verification.ok, "{verification:?}");
    assert_eq!(verification.events_posted, log.len() as u64);
    let positions: Vec<i64> =
        sqlx::query_scalar("SELECT position FROM ledger_transactions ORDER BY position")
            .fetch_all(&servers.pool)
            .await
            .expect("read the positions posted");
    let expected: Vec<i64> = log
        .iter()
        .map(|recorded| i64::try_from(recorded.position).expect("a small position"))
        .collect();
    assert_eq!(positions, expected, "every event posted once, none missing");
}

#[tokio::test]
async fn a_transaction_postgresql_loses_while_the_consumer_runs_is_posted_again() {
    let Some(servers) = Servers::start().await else {
        return;
    };
    let log = log_of(FIRST_EVENTS + LATER_EVENTS - 2).recorded;
    let (first, later) = log.split_at(FIRST_EVENTS);
    let group = unique_name("wallex_it_offsets_group");
    produce(&servers.brokers, &servers.topic, first).await;
    let consuming = servers.consume(&group);
    servers.wait_posted(first.len()).await;
    assert_eq!(
        servers.stored_offset(&group).await,
        Some(FIRST_EVENTS as i64)
    );

    let kept = FIRST_EVENTS - LOST_EVENTS;
    servers.lose_transactions(&group, &log, kept).await;
    assert_eq!(servers.events_posted().await, kept as u64);
    // Kafka's committed offset is past the lost events; the next batch reveals the loss.
    produce(&servers.brokers, &servers.topic, later).await;
    servers.wait_posted(log.len()).await;
    tokio::time::sleep(QUIET_PERIOD).await;
    let metrics = consuming.stop().await;

    assert_ledger_holds(&servers, &log).await;
    assert_eq!(
        metrics.events_posted.get(),
        (log.len() + LOST_EVENTS) as u64,
        "the lost events posted a second time, the others once"
    );
    assert_eq!(
        metrics.duplicates_skipped.get(),
        0,
        "nothing the ledger kept was handed again"
    );
    assert_eq!(servers.stored_offset(&group).await, Some(log.len() as i64));
    servers.database.drop_database().await;
}

#[tokio::test]
async fn after_a_restart_the_stored_offset_rules_where_kafka_committed_more() {
    let Some(servers) = Servers::start().await else {
        return;
    };
    let log = log_of(FIRST_EVENTS - 2).recorded;
    let group = unique_name("wallex_it_offsets_group");
    produce(&servers.brokers, &servers.topic, &log).await;
    let first_run = servers.consume(&group);
    servers.wait_posted(log.len()).await;
    first_run.stop().await;

    let kept = FIRST_EVENTS - LOST_EVENTS;
    servers.lose_transactions(&group, &log, kept).await;
    let restarted = servers.consume(&group);
    servers.wait_posted(log.len()).await;
    tokio::time::sleep(QUIET_PERIOD).await;
    let metrics = restarted.stop().await;

    assert_ledger_holds(&servers, &log).await;
    assert_eq!(
        metrics.events_posted.get(),
        LOST_EVENTS as u64,
        "the lost events posted again"
    );
    assert_eq!(metrics.duplicates_skipped.get(), 0, "nothing handed twice");
    assert_eq!(servers.stored_offset(&group).await, Some(log.len() as i64));
    servers.database.drop_database().await;
}

/// A static member (`group.instance.id`, as the k8s manifests give each
/// pod its name) stopped and started again under its id, with offsets
/// stored, takes its partition back and consumes on. (After a kill -9 the
/// broker still maps the id to the dead member, and a commit under the id
/// before joining was fenced, fatally for the client: the fault suite's
/// consumer kills cover that path, as a clean stop here may not leave it.)
#[tokio::test]
async fn a_static_member_started_again_under_its_id_consumes_on() {
    let Some(servers) = Servers::start().await else {
        return;
    };
    let log = log_of(FIRST_EVENTS + LATER_EVENTS - 2).recorded;
    let (first, later) = log.split_at(FIRST_EVENTS);
    let group = unique_name("wallex_it_offsets_group");
    let instance = unique_name("wallex_it_offsets_member");
    produce(&servers.brokers, &servers.topic, first).await;
    servers
        .consume_as(&group, Some(&instance))
        .stop_after_posted(&servers, first.len())
        .await;

    produce(&servers.brokers, &servers.topic, later).await;
    let metrics = servers
        .consume_as(&group, Some(&instance))
        .stop_after_posted(&servers, log.len())
        .await;

    assert_ledger_holds(&servers, &log).await;
    assert_eq!(metrics.events_posted.get(), later.len() as u64);
    assert_eq!(servers.stored_offset(&group).await, Some(log.len() as i64));
    servers.database.drop_database().await;
}

#[tokio::test]
async fn a_stored_offset_ahead_of_kafka_skips_what_is_already_applied() {
    let Some(servers) = Servers::start().await else {
        return;
    };
    let log = log_of(FIRST_EVENTS + LATER_EVENTS - 2).recorded;
    let (first, later) = log.split_at(FIRST_EVENTS);
    produce(&servers.brokers, &servers.topic, first).await;
    let first_group = unique_name("wallex_it_offsets_group");
    servers
        .consume(&first_group)
        .stop_after_posted(&servers, first.len())
        .await;

    // A group Kafka knows nothing of (it reads from the earliest offset), whose stored
    // offset says everything produced so far is applied.
    let group = unique_name("wallex_it_offsets_group");
    servers.store_offset(&group, FIRST_EVENTS).await;
    let consuming = servers.consume(&group);
    produce(&servers.brokers, &servers.topic, later).await;
    servers.wait_posted(log.len()).await;
    tokio::time::sleep(QUIET_PERIOD).await;
    let metrics = consuming.stop().await;

    assert_ledger_holds(&servers, &log).await;
    assert_eq!(metrics.events_posted.get(), LATER_EVENTS as u64);
    assert_eq!(
        metrics.duplicates_skipped.get(),
        0,
        "the events below the stored offset were not handed"
    );
    assert_eq!(servers.stored_offset(&group).await, Some(log.len() as i64));
    servers.database.drop_database().await;
}

/// Deletes the messages of the test's topic below `offset`, as retention would.
async fn delete_below(servers: &Servers, offset: i64) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &servers.brokers)
        .create()
        .expect("a Kafka admin client");
    let mut below = TopicPartitionList::new();
    below
        .add_partition_offset(&servers.topic, 0, Offset::Offset(offset))
        .expect("name the partition");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let deleted = admin
        .delete_records(&below, &options)
        .await
        .expect("the broker answers DeleteRecords");
    for element in deleted.elements() {
        element.error().expect("the records are deleted");
        assert_eq!(
            element.offset(),
            Offset::Offset(offset),
            "the new low watermark"
        );
    }
}

#[tokio::test]
async fn a_stored_offset_below_what_retention_kept_takes_the_first_kept_message() {
    let Some(servers) = Servers::start().await else {
        return;
    };
    let mut log = EventLog::default();
    for wallet in 0..FIRST_EVENTS {
        log.create(&format!("w-{wallet}"), "1.00");
    }
    let log = log.recorded;
    produce(&servers.brokers, &servers.topic, &log).await;
    let kept_from = LOST_EVENTS;
    let stored_below = kept_from / 2;
    delete_below(&servers, kept_from as i64).await;
    let group = unique_name("wallex_it_offsets_group");
    servers.store_offset(&group, stored_below).await;

    let consuming = servers.consume(&group);
    servers.wait_posted(log.len() - kept_from).await;
    tokio::time::sleep(QUIET_PERIOD).await;
    let missed = consuming
        .consumer_metrics
        .missed_to_retention
        .with_label_values(&["ledger"])
        .get();
    consuming.stop().await;

    assert_eq!(
        missed,
        (kept_from - stored_below) as u64,
        "the messages retention deleted, counted"
    );
    assert_ledger_holds(&servers, &log[kept_from..]).await;
    assert_eq!(servers.stored_offset(&group).await, Some(log.len() as i64));
    servers.database.drop_database().await;
}

/// h113 F2: the topic deleted and created again under a group whose stored offset
/// is far past the new partition's end; every new message was skipped as applied.
#[tokio::test]
async fn a_partition_ending_below_the_stored_offset_is_taken_again_from_its_start() {
    let Some(servers) = Servers::start().await else {
        return;
    };
    let log = log_of(FIRST_EVENTS - 2).recorded;
    let group = unique_name("wallex_it_offsets_group");
    // What the group stored on the topic before it was created again.
    servers.store_offset(&group, 10 * FIRST_EVENTS).await;
    produce(&servers.brokers, &servers.topic, &log).await;

    let consuming = servers.consume(&group);
    servers.wait_posted(log.len()).await;
    tokio::time::sleep(QUIET_PERIOD).await;
    let restarts = consuming
        .consumer_metrics
        .partition_restarts
        .with_label_values(&["ledger"])
        .get();
    consuming.stop().await;

    assert_eq!(restarts, 1, "the restart of the partition, counted once");
    assert_ledger_holds(&servers, &log).await;
    assert_eq!(servers.stored_offset(&group).await, Some(log.len() as i64));
    servers.database.drop_database().await;
}

/// A step of a test's sink beside the ledger's handler: it sees each batch and
/// may refuse it.
type Step = Box<dyn Fn(&[RecordedEvent]) -> Result<(), DeliveryError> + Send + Sync>;

/// The ledger's handler between two steps of the same sink: `before` may refuse a
/// batch before the ledger posts it (as the search index refused a blocked index's
/// writes), `after` runs once the ledger posted it and stored the offsets (as the
/// projection indexes for search after its read model stored them).
struct AroundLedger {
    ledger: LedgerHandler,
    before: Step,
    after: Step,
}

impl AroundLedger {
    fn new(servers: &Servers, metrics: &Metrics, before: Step, after: Step) -> Self {
        Self {
            ledger: LedgerHandler::new(servers.ledger.clone(), metrics.clone()),
            before,
            after,
        }
    }
}

fn no_step() -> Step {
    Box::new(|_| Ok(()))
}

#[async_trait]
impl EventSink for AroundLedger {
    fn name(&self) -> &'static str {
        "around_ledger"
    }

    async fn checkpoint(&self) -> Result<u64, DeliveryError> {
        self.ledger.checkpoint().await
    }

    async fn deliver(&self, batch: &[RecordedEvent]) -> Result<(), DeliveryError> {
        (self.before)(batch)?;
        self.ledger.deliver(batch).await?;
        (self.after)(batch)
    }

    async fn stored_offsets(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<Option<StoredOffsets>, DeliveryError> {
        self.ledger.stored_offsets(group, topic).await
    }

    async fn deliver_consumed(
        &self,
        batch: &[RecordedEvent],
        offsets: &ConsumerOffsets,
    ) -> Result<(), DeliveryError> {
        (self.before)(batch)?;
        self.ledger.deliver_consumed(batch, offsets).await?;
        (self.after)(batch)
    }
}

/// A later step that fails once, transiently, on the batch holding
/// `failing_position`, and records the position of every event it took.
struct FailsOnce {
    failing_position: u64,
    failed: AtomicBool,
    taken: Mutex<BTreeSet<u64>>,
}

impl FailsOnce {
    fn step(&self, batch: &[RecordedEvent]) -> Result<(), DeliveryError> {
        let holds_failing = batch
            .iter()
            .any(|recorded| recorded.position == self.failing_position);
        if holds_failing && !self.failed.swap(true, Ordering::SeqCst) {
            return Err(DeliveryError::transient(
                "later_step",
                "the later step is away (simulated)",
            ));
        }
        let mut taken = self.taken.lock().unwrap_or_else(PoisonError::into_inner);
        taken.extend(batch.iter().map(|recorded| recorded.position));
        Ok(())
    }

    fn taken(&self) -> BTreeSet<u64> {
        self.taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[tokio::test]
async fn a_batch_whose_later_step_failed_after_its_offsets_were_stored_is_handed_again() {
    let Some(servers) = Servers::start().await else {
        return;
    };
    let log = log_of(FIRST_EVENTS - 2).recorded;
    let group = unique_name("wallex_it_offsets_group");
    let metrics = Metrics::new().expect("metrics");
    let later = Arc::new(FailsOnce {
        failing_position: log[log.len() / 2].position,
        failed: AtomicBool::new(false),
        taken: Mutex::new(BTreeSet::new()),
    });
    let step = Arc::clone(&later);
    let after: Step = Box::new(move |batch| step.step(batch));
    let sink = Arc::new(AroundLedger::new(&servers, &metrics, no_step(), after));
    produce(&servers.brokers, &servers.topic, &log).await;
    let consuming = servers.consume_into(&group, None, sink, metrics);
    let expected: BTreeSet<u64> = log.iter().map(|recorded| recorded.position).collect();
    let deadline = tokio::time::Instant::now() + WAIT_TIMEOUT;
    while later.taken() != expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(WAIT_POLL).await;
    }
    consuming.stop().await;

    assert!(
        later.failed.load(Ordering::SeqCst),
        "the later step failed once"
    );
    let missing: Vec<u64> = expected.difference(&later.taken()).copied().collect();
    assert!(
        missing.is_empty(),
        "the later step never took the events at positions {missing:?}"
    );
    assert_ledger_holds(&servers, &log).await;
    assert_eq!(servers.stored_offset(&group).await, Some(log.len() as i64));
    servers.database.drop_database().await;
}

/// A step refusing, for good, every batch that holds the event at
/// `refused_position` (as the search index refused a blocked index's writes).
fn refuses(refused_position: u64) -> Step {
    Box::new(move |batch| {
        if batch
            .iter()
            .any(|recorded| recorded.position == refused_position)
        {
            return Err(DeliveryError::permanent(
                "refuses_one",
                "this event is refused (simulated)",
            ));
        }
        Ok(())
    })
}

#[tokio::test]
async fn a_refused_last_message_is_parked_once_and_the_stored_offset_moves_past_it() {
    let Some(servers) = Servers::start().await else {
        return;
    };
    let log = log_of(FIRST_EVENTS - 2).recorded;
    let (first, later) = log.split_at(log.len() - 1);
    let refused = first.last().expect("a last event");
    let group = unique_name("wallex_it_offsets_group");
    let metrics = Metrics::new().expect("metrics");
    let before = refuses(refused.position);
    let sink = Arc::new(AroundLedger::new(&servers, &metrics, before, no_step()));
    produce(&servers.brokers, &servers.topic, first).await;
    let consuming = servers.consume_into(&group, None, sink, metrics);
    servers.wait_posted(first.len() - 1).await;
    let deadline = tokio::time::Instant::now() + WAIT_TIMEOUT;
    while servers.stored_offset(&group).await != Some(first.len() as i64) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stored offset did not move past the parked message: {:?}",
            servers.stored_offset(&group).await
        );
        tokio::time::sleep(WAIT_POLL).await;
    }
    // The next message: taken without bringing the parked one back.
    produce(&servers.brokers, &servers.topic, later).await;
    servers.wait_posted(log.len() - 1).await;
    tokio::time::sleep(QUIET_PERIOD).await;
    consuming.stop().await;

    assert_eq!(servers.stored_offset(&group).await, Some(log.len() as i64));
    let mut config = ConsumerConfig::new(&servers.brokers, &group);
    config.dlq_topic = servers.dlq_topic.clone();
    let letters = event_bus::dead_letters_to_replay(&config)
        .await
        .expect("the dead-letter topic's depth");
    assert_eq!(letters, 1, "the refused message parked once, not again");
    servers.database.drop_database().await;
}
