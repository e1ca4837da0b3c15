//! A consumer group member through the Kafka faults that once left one
//! silent for good in the fault suite: the broker stopped (SIGSTOP) past the
//! session timeout while the member, just started and catching up, had
//! commits in flight, then woken; later killed and started again. After
//! each, every event produced must be handed to the handler within a bound.
//!
//! The faults go through `scripts/infra.sh`, so the test runs only on the
//! servers that script started in this checkout (`.infra/env`), and skips
//! otherwise. It stops the broker every other test uses: it lives in a test
//! binary of its own (cargo runs test binaries one after another).

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use event_bus::{run_consumer_with_metrics, ConsumerConfig, ConsumerMetrics};
use event_sink::{ConsumerOffsets, DeliveryError, EventSink, StoredOffsets};
use event_store::RecordedEvent;
use integration_tests::{
    continue_history, create_topic, run_infra_script, started_by_infra_script, unique_name,
};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;
use wallet_domain::WalletId;

/// The handler's name, in metrics and logs.
const HANDLER: &str = "stall_recorder";
const TOPIC_PARTITIONS: i32 = 8;
/// Events waiting when the member starts: enough that it is still catching
/// up, committing batch after batch, when the broker stops.
const BACKLOG_EVENTS: usize = 4_000;
/// Wallets the events are spread over (the key, so the partition).
const WALLETS: usize = 64;
/// How long each batch takes in the handler: the backlog takes seconds.
const HANDLER_PAUSE: Duration = Duration::from_millis(20);
/// As in the fault suite: well past the session timeout, so the member
/// loses its group while the broker is stopped.
const KAFKA_PAUSE: Duration = Duration::from_secs(45);
/// How long the killed broker stays down.
const KAFKA_DOWN: Duration = Duration::from_secs(2);
/// Bound on every event produced being handled after a fault healed: a
/// silent member's replacement (`event_bus::MEMBER_STALL_MAX_MS`,
/// `event_bus::MEMBER_OUT_OF_GROUP_MAX_MS`: a minute of messages waiting)
/// and its rejoin, with room to spare.
const HANDLED_AFTER_FAULT: Duration = Duration::from_secs(150);
/// Events produced after each fault healed.
const EVENTS_AFTER_FAULT: usize = 40;
const WAIT_POLL: Duration = Duration::from_millis(100);
/// Bound on one attempt at producing a message.
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on producing a message, attempts included.
const PRODUCE_DEADLINE: Duration = Duration::from_secs(120);

/// A sink that keeps its consumer offsets with what it handled, as the
/// projections do, in memory: the loop's stored-offsets path (skips, seeks)
/// is the one the binaries take.
#[derive(Default)]
struct StoringRecorder {
    state: Mutex<Stored>,
}

#[derive(Default)]
struct Stored {
    handled: BTreeSet<Uuid>,
    offsets: StoredOffsets,
}

impl StoringRecorder {
    fn handled(&self) -> BTreeSet<Uuid> {
        self.lock().handled.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Stored> {
        self.state.lock().expect("recorder lock")
    }
}

#[async_trait]
impl EventSink for StoringRecorder {
    fn name(&self) -> &'static str {
        HANDLER
    }

    async fn checkpoint(&self) -> Result<u64, DeliveryError> {
        Ok(0)
    }

    async fn deliver(&self, batch: &[RecordedEvent]) -> Result<(), DeliveryError> {
        let mut state = self.lock();
        state
            .handled
            .extend(batch.iter().map(|event| event.event.event_id));
        Ok(())
    }

    async fn stored_offsets(
        &self,
        _group: &str,
        _topic: &str,
    ) -> Result<Option<StoredOffsets>, DeliveryError> {
        Ok(Some(self.lock().offsets.clone()))
    }

    async fn deliver_consumed(
        &self,
        batch: &[RecordedEvent],
        offsets: &ConsumerOffsets,
    ) -> Result<(), DeliveryError> {
        tokio::time::sleep(HANDLER_PAUSE).await;
        let mut state = self.lock();
        let moved = offsets
            .moves()
            .any(|(partition, expected, _)| state.offsets.get(&partition).copied() != expected);
        if moved {
            return Err(DeliveryError::offsets_moved(
                HANDLER,
                event_sink::OffsetsMoved::of(offsets),
            ));
        }
        for (partition, _, next) in offsets.moves() {
            state.offsets.insert(partition, next);
        }
        state
            .handled
            .extend(batch.iter().map(|event| event.event.event_id));
        Ok(())
    }
}

/// `count` events of [`WALLETS`] wallets, their ids.
fn events(run: &str, count: usize) -> Vec<RecordedEvent> {
    let wallets: Vec<WalletId> = (0..WALLETS)
        .map(|index| WalletId::parse(&format!("w{index}-{run}")).expect("wallet id"))
        .collect();
    let per_wallet = count.div_ceil(WALLETS);
    let histories: Vec<_> = wallets
        .iter()
        .map(|wallet| continue_history(wallet, &[], per_wallet))
        .collect();
    let mut log = Vec::with_capacity(count);
    for version in 0..per_wallet {
        for history in &histories {
            if log.len() == count {
                return log;
            }
            log.push(RecordedEvent {
                position: log.len() as u64 + 1,
                stream_version: version as u64 + 1,
                event: history[version].clone(),
            });
        }
    }
    log
}

/// A producer to `brokers`.
fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "message.timeout.ms",
            PRODUCE_TIMEOUT.as_millis().to_string(),
        )
        .create()
        .expect("a producer")
}

/// Produces `events` to `topic`, all in flight at once, sending again what
/// the broker did not acknowledge through a new producer (this producer is
/// not what is tested, and a librdkafka client can stay stuck after a broker
/// stop, as the relay's does: it renews its producer after a failed batch)
/// until [`PRODUCE_DEADLINE`].
async fn produce_all(brokers: &str, topic: &str, events: &[RecordedEvent]) {
    let deadline = Instant::now() + PRODUCE_DEADLINE;
    let mut unsent: Vec<(String, String)> = events
        .iter()
        .map(|event| {
            (
                event.event.wallet_id.as_str().to_owned(),
                event.to_json().expect("the event encodes"),
            )
        })
        .collect();
    while !unsent.is_empty() {
        let producer = producer(brokers);
        let sends = unsent.iter().map(|(key, value)| {
            producer.send(
                FutureRecord::to(topic).key(key).payload(value),
                PRODUCE_TIMEOUT,
            )
        });
        let results = futures::future::join_all(sends).await;
        let mut failed = Vec::new();
        let mut last_error = None;
        for (sent, message) in results.into_iter().zip(unsent) {
            if let Err((error, _)) = sent {
                last_error = Some(error);
                failed.push(message);
            }
        }
        if let Some(error) = last_error {
            assert!(
                Instant::now() < deadline,
                "{} messages not acknowledged within {} s: {error}",
                failed.len(),
                PRODUCE_DEADLINE.as_secs()
            );
        }
        unsent = failed;
    }
}

/// Whether `brokers` is the Kafka `scripts/infra.sh up` started in this
/// checkout (the only one this test may stop).
fn brokers_are_from_infra_script(brokers: &str) -> bool {
    started_by_infra_script("this test needs the Kafka", "KAFKA_BROKERS", brokers)
}

/// Runs `scripts/infra.sh <arguments>`.
async fn infra(arguments: &[&str]) {
    run_infra_script(arguments, &[]).await;
}

/// Waits until every event of `expected` was handled, at most `bound`;
/// returns how long that took.
async fn handled_within(
    recorder: &StoringRecorder,
    expected: &[RecordedEvent],
    bound: Duration,
    after: &str,
) -> Duration {
    let started = Instant::now();
    let wanted: BTreeSet<Uuid> = expected.iter().map(|event| event.event.event_id).collect();
    loop {
        let missing = wanted.difference(&recorder.handled()).count();
        if missing == 0 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < bound,
            "{after}: {missing} of {} events not handled within {} s",
            wanted.len(),
            bound.as_secs()
        );
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// What the killed member's process is told, by variable: `topic group
/// instance dlq_topic`, separated by spaces.
const DOOMED_MEMBER_VARIABLE: &str = "WALLEX_IT_DOOMED_MEMBER";
/// How long the killed member consumes before it is killed.
const DOOMED_MEMBER_RUN: Duration = Duration::from_secs(4);

/// A member config of `group` on `topic`, static under `instance`.
fn member_config(
    brokers: &str,
    topic: &str,
    dlq_topic: &str,
    group: &str,
    instance: &str,
) -> ConsumerConfig {
    let mut config = ConsumerConfig::new(brokers, group);
    config.topic = topic.to_owned();
    config.dlq_topic = dlq_topic.to_owned();
    config.group_instance_id = Some(instance.to_owned());
    config.batch_size_max = 50;
    config.client_debug = std::env::var("KAFKA_DEBUG").ok();
    config
}

/// Runs one member of `config` into a new recorder until `stopped`.
fn start_member(
    config: ConsumerConfig,
    stopped: watch::Receiver<bool>,
) -> (
    Arc<StoringRecorder>,
    tokio::task::JoinHandle<Result<(), event_bus::BusError>>,
) {
    let recorder = Arc::new(StoringRecorder::default());
    let metrics = ConsumerMetrics::unregistered().expect("metrics");
    let task = tokio::spawn(run_consumer_with_metrics(
        config,
        Arc::clone(&recorder) as Arc<dyn EventSink>,
        metrics,
        stopped,
    ));
    (recorder, task)
}

/// The member the main test kills with SIGKILL: run in a process of its own
/// (this test binary again) when [`DOOMED_MEMBER_VARIABLE`] is set, it
/// consumes until it is killed, and never leaves its group.
#[tokio::test]
#[ignore = "run by a_member_consumes_again_after_kafka_was_stopped_past_its_session_and_then_killed"]
async fn doomed_member() {
    let Ok(told) = std::env::var(DOOMED_MEMBER_VARIABLE) else {
        return;
    };
    let Some(brokers) = integration_tests::require_env("KAFKA_BROKERS") else {
        return;
    };
    let [topic, group, instance, dlq_topic] = told.split(' ').collect::<Vec<_>>()[..] else {
        panic!("{DOOMED_MEMBER_VARIABLE} is `topic group instance dlq_topic`, not {told:?}");
    };
    let config = member_config(&brokers, topic, dlq_topic, group, instance);
    let (_stop, stopped) = watch::channel(false);
    let (_recorder, member) = start_member(config, stopped);
    let ended = member.await;
    panic!("the doomed member ended before it was killed: {ended:?}");
}

/// Starts [`doomed_member`] in a process of its own on `group` under
/// `instance`, lets it consume for [`DOOMED_MEMBER_RUN`], and kills it.
async fn kill_a_member_after_a_while(topic: &str, dlq_topic: &str, group: &str, instance: &str) {
    let mut child = Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--ignored", "--exact", "doomed_member", "--nocapture"])
        .env(
            DOOMED_MEMBER_VARIABLE,
            format!("{topic} {group} {instance} {dlq_topic}"),
        )
        .spawn()
        .expect("the doomed member starts");
    tokio::time::sleep(DOOMED_MEMBER_RUN).await;
    child.kill().expect("SIGKILL to the doomed member");
    child.wait().expect("the doomed member is reaped");
}

/// The fault suite's failure of 2026-12-05, step by step: the read model's
/// consumer (a static member, with a second group in the same process) is
/// killed and started again while events wait; a few seconds into its
/// catching up, Kafka stops for 45 s, past the session timeout; then Kafka
/// is killed and started again. After each fault, every event produced must
/// be handled within [`HANDLED_AFTER_FAULT`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_consumes_again_after_kafka_was_stopped_past_its_session_and_then_killed() {
    let Some(brokers) = integration_tests::require_env("KAFKA_BROKERS") else {
        return;
    };
    if !brokers_are_from_infra_script(&brokers) {
        return;
    }
    observability::init_tracing(observability::LogFormat::Text);
    let topic = create_topic(&brokers, "wallex_it_stall", TOPIC_PARTITIONS).await;
    let dlq_topic = create_topic(&brokers, "wallex_it_stall_dlq", 1).await;
    let run = unique_name("run");
    let (group, other_group) = (
        unique_name("wallex_it_stall"),
        unique_name("wallex_it_stall"),
    );
    let (instance, other_instance) = (unique_name("member"), unique_name("member"));
    let backlog = events(&format!("{run}a"), BACKLOG_EVENTS);
    produce_all(&brokers, &topic, &backlog[..BACKLOG_EVENTS / 4]).await;
    kill_a_member_after_a_while(&topic, &dlq_topic, &group, &instance).await;
    produce_all(&brokers, &topic, &backlog[BACKLOG_EVENTS / 4..]).await;

    let (stop, stopped) = watch::channel(false);
    let member = member_config(&brokers, &topic, &dlq_topic, &group, &instance);
    let (recorder, consumer) = start_member(member, stopped.clone());
    let other = member_config(&brokers, &topic, &dlq_topic, &other_group, &other_instance);
    let (other_recorder, other_consumer) = start_member(other, stopped);
    let deadline = Instant::now() + HANDLED_AFTER_FAULT;
    while recorder.handled().is_empty() {
        assert!(Instant::now() < deadline, "the member handled nothing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    infra(&["pause", "kafka"]).await;
    let handled_at_pause = recorder.handled().len();
    tokio::time::sleep(KAFKA_PAUSE).await;
    infra(&["resume", "kafka"]).await;
    eprintln!(
        "kafka woken; {handled_at_pause} of {BACKLOG_EVENTS} waiting events handled when it stopped"
    );
    let after_pause = events(&format!("{run}b"), EVENTS_AFTER_FAULT);
    produce_all(&brokers, &topic, &after_pause).await;
    // The killed member handled (and may have committed) some of the first
    // quarter: its successor owes only what came after it.
    let owed = [&backlog[BACKLOG_EVENTS / 4..], after_pause.as_slice()].concat();
    let all_so_far = [backlog.as_slice(), after_pause.as_slice()].concat();
    for (name, recorder, expected) in [
        ("member", &recorder, &owed),
        ("other group's member", &other_recorder, &all_so_far),
    ] {
        let took = handled_within(
            recorder,
            expected,
            HANDLED_AFTER_FAULT,
            &format!("the {name}, after Kafka was stopped for 45 s"),
        )
        .await;
        eprintln!(
            "the {name} handled everything {} ms after Kafka woke",
            took.as_millis()
        );
    }

    infra(&["kill", "kafka"]).await;
    tokio::time::sleep(KAFKA_DOWN).await;
    infra(&["start", "kafka"]).await;
    let after_kill = events(&format!("{run}c"), EVENTS_AFTER_FAULT);
    produce_all(&brokers, &topic, &after_kill).await;
    for (name, recorder) in [
        ("member", &recorder),
        ("other group's member", &other_recorder),
    ] {
        let took = handled_within(
            recorder,
            &after_kill,
            HANDLED_AFTER_FAULT,
            &format!("the {name}, after Kafka was killed and started again"),
        )
        .await;
        eprintln!(
            "the {name} handled everything {} ms after Kafka started again",
            took.as_millis()
        );
    }

    stop.send_replace(true);
    for consumer in [consumer, other_consumer] {
        consumer
            .await
            .expect("the consumer task ran")
            .expect("the consumer stops cleanly");
    }
}
