//! The history against the event store: each acknowledged operation applied
//! exactly once to each wallet it moves money of, no refused one applied, no
//! balance ever negative, every stream's versions 1, 2, 3, …; and the
//! dead-letter topic's depth and letters.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use event_bus::{HEADER_EVENT_ID, HEADER_HANDLER};
use integration_tests::client::{Operation, Outcome};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use rust_decimal::Decimal;
use sqlx::{Connection, PgConnection};

/// Bound on one metadata or watermark request to Kafka.
const KAFKA_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on reading a dead-letter topic up to its high watermarks.
const DEAD_LETTERS_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What the event store holds, as far as the audit needs it.
pub struct StoredEvents {
    /// (wallet, description) → how many events carry it.
    occurrences: BTreeMap<(String, String), usize>,
    /// Each wallet's balance after its last event.
    pub final_balances: BTreeMap<String, Decimal>,
    /// Every invariant of the streams that does not hold.
    pub broken: Vec<String>,
}

/// Reads every event of the store's database.
///
/// # Panics
/// When the database cannot be read or holds what is not an event.
pub async fn read_events(database_url: &str) -> StoredEvents {
    let mut connection = PgConnection::connect(database_url)
        .await
        .expect("connect to the event store's database");
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT stream_id, version, payload FROM events ORDER BY stream_id, version",
    )
    .fetch_all(&mut connection)
    .await
    .expect("read the events table");
    let mut stored = StoredEvents {
        occurrences: BTreeMap::new(),
        final_balances: BTreeMap::new(),
        broken: Vec::new(),
    };
    let mut last_version: BTreeMap<String, i64> = BTreeMap::new();
    for (stream, version, payload) in rows {
        let event: serde_json::Value = serde_json::from_str(&payload).expect("an event is JSON");
        let expected_version = last_version.get(&stream).map_or(1, |last| last + 1);
        if version != expected_version {
            stored.broken.push(format!(
                "{stream}: version {version} follows {}",
                expected_version - 1
            ));
        }
        last_version.insert(stream.clone(), version);
        let balance = event["balanceAfter"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| event["balanceAfter"].as_number().map(ToString::to_string))
            .and_then(|text| Decimal::from_str(&text).ok())
            .expect("an event carries its balance after");
        if balance.is_sign_negative() && !balance.is_zero() {
            stored.broken.push(format!(
                "{stream}: version {version} leaves a negative balance {balance}"
            ));
        }
        stored.final_balances.insert(stream.clone(), balance);
        if let Some(description) = event["description"].as_str() {
            *stored
                .occurrences
                .entry((stream, description.to_owned()))
                .or_default() += 1;
        }
    }
    connection
        .close()
        .await
        .expect("close the audit's connection");
    stored
}

/// How the operations of one phase fared in the store.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    pub acknowledged: usize,
    pub lost: usize,
    pub doubled: usize,
    /// Refused (4xx), yet found in the store.
    pub refused_applied: usize,
}

impl StoredEvents {
    /// Adds `operation` to `tally`, with what is wrong about it, if anything.
    pub fn tally(&self, operation: &Operation, tally: &mut Tally) -> Option<String> {
        let counts = self.legs_found(operation);
        match operation.outcome {
            Outcome::Acknowledged => {
                tally.acknowledged += 1;
                if counts.contains(&0) {
                    tally.lost += 1;
                    return Some(format!(
                        "acknowledged yet lost: {operation:?} (found {counts:?})"
                    ));
                }
                if counts.iter().any(|count| *count > 1) {
                    tally.doubled += 1;
                    return Some(format!(
                        "applied more than once: {operation:?} (found {counts:?})"
                    ));
                }
            }
            Outcome::Refused(_) => {
                if counts.iter().any(|count| *count > 0) {
                    tally.refused_applied += 1;
                    return Some(format!(
                        "refused yet applied: {operation:?} (found {counts:?})"
                    ));
                }
            }
        }
        None
    }
}

impl StoredEvents {
    /// How many events carry `operation` in each wallet it moves money of.
    pub fn legs_found(&self, operation: &Operation) -> Vec<usize> {
        operation
            .moves
            .iter()
            .map(|(wallet, _)| {
                self.occurrences
                    .get(&(wallet.clone(), operation.description.clone()))
                    .copied()
                    .unwrap_or(0)
            })
            .collect()
    }
}

/// Messages held by every partition of `topic`.
///
/// # Panics
/// When the broker does not answer.
pub fn topic_depth(brokers: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", integration_tests::unique_name("faults_audit"))
        .create()
        .expect("a Kafka client");
    let metadata = consumer
        .fetch_metadata(Some(topic), KAFKA_REQUEST_TIMEOUT)
        .expect("the topic's metadata");
    let mut depth = 0;
    for found in metadata
        .topics()
        .iter()
        .filter(|found| found.name() == topic)
    {
        for partition in found.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition.id(), KAFKA_REQUEST_TIMEOUT)
                .expect("the partition's watermarks");
            depth += (high - low).max(0);
        }
    }
    depth
}

/// One message of a dead-letter topic, as far as the audit needs it.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// The handler that parked it (its `handler` header).
    pub handler: String,
    /// The message key: the wallet.
    pub wallet_id: String,
    /// The parked event's id (its `event-id` header).
    pub event_id: String,
    /// The parked event's version in its stream (the envelope's `streamVersion`).
    pub stream_version: i64,
}

/// Every message `topic` holds, read from the start up to its high
/// watermarks within [`DEAD_LETTERS_READ_TIMEOUT`].
///
/// # Panics
/// When the broker does not answer, or a letter lacks its key, headers or envelope.
pub fn dead_letters(brokers: &str, topic: &str) -> Vec<DeadLetter> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", integration_tests::unique_name("faults_letters"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("a Kafka client");
    let metadata = consumer
        .fetch_metadata(Some(topic), KAFKA_REQUEST_TIMEOUT)
        .expect("the topic's metadata");
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0;
    for partition in metadata
        .topics()
        .iter()
        .filter(|found| found.name() == topic)
        .flat_map(|found| found.partitions())
    {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition.id(), KAFKA_REQUEST_TIMEOUT)
            .expect("the partition's watermarks");
        remaining += (high - low).max(0);
        assignment
            .add_partition_offset(topic, partition.id(), Offset::Beginning)
            .expect("a partition to read");
    }
    let mut letters = Vec::new();
    if remaining == 0 {
        return letters;
    }
    consumer
        .assign(&assignment)
        .expect("the topic's partitions assigned");
    let started = std::time::Instant::now();
    while letters.len() < usize::try_from(remaining).unwrap_or(usize::MAX) {
        assert!(
            started.elapsed() < DEAD_LETTERS_READ_TIMEOUT,
            "read {} of the {remaining} dead letters of {topic} within {DEAD_LETTERS_READ_TIMEOUT:?}",
            letters.len()
        );
        let Some(message) = consumer.poll(KAFKA_REQUEST_TIMEOUT) else {
            continue;
        };
        let message = message.expect("a dead letter");
        let header = |name: &str| -> String {
            message
                .headers()
                .and_then(|headers| {
                    headers
                        .iter()
                        .find(|header| header.key == name)
                        .and_then(|header| header.value)
                })
                .map(|value| String::from_utf8_lossy(value).into_owned())
                .unwrap_or_else(|| panic!("a dead letter without its {name} header"))
        };
        let envelope: serde_json::Value =
            serde_json::from_slice(message.payload().expect("a dead letter with its event"))
                .expect("a dead letter's envelope is JSON");
        letters.push(DeadLetter {
            handler: header(HEADER_HANDLER),
            wallet_id: String::from_utf8_lossy(message.key().expect("a dead letter's key"))
                .into_owned(),
            event_id: header(HEADER_EVENT_ID),
            stream_version: envelope["streamVersion"]
                .as_i64()
                .expect("an envelope's streamVersion"),
        });
    }
    letters
}
