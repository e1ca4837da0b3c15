//! Kafka through rdkafka: an idempotent producer keyed by wallet, read back by a consumer
//! group that sees each key's messages in the order they were produced.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use integration_tests::{require_env, unique_name, REQUEST_TIMEOUT};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

const TOPIC: &str = "wallet-events";
const TOPIC_PARTITIONS: usize = 10;
const KEY_COUNT: usize = 6;
const MESSAGES_PER_KEY: usize = 25;
/// Bound on reading every message back, group join included.
const CONSUME_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on delivering one message (acks=all, retries included).
const DELIVERY_TIMEOUT_MS: &str = "30000";

fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", DELIVERY_TIMEOUT_MS)
        .set("linger.ms", "5")
        .create()
        .expect("an rdkafka producer")
}

fn consumer(brokers: &str, group: &str) -> StreamConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "10000")
        .create()
        .expect("an rdkafka consumer")
}

/// `<run>|<key>|<sequence>`: the run tells this test's messages from earlier runs'.
fn payload(run: &str, key: &str, sequence: usize) -> String {
    format!("{run}|{key}|{sequence}")
}

#[tokio::test]
async fn keyed_messages_come_back_in_order_per_key() {
    let Some(brokers) = require_env("KAFKA_BROKERS") else {
        return;
    };
    let run = unique_name("run");
    let keys: Vec<String> = (0..KEY_COUNT)
        .map(|index| format!("wallet-{index}-{run}"))
        .collect();

    let producer = producer(&brokers);
    let metadata = producer
        .client()
        .fetch_metadata(Some(TOPIC), REQUEST_TIMEOUT)
        .expect("topic metadata from the broker");
    let topic = metadata
        .topics()
        .iter()
        .find(|topic| topic.name() == TOPIC)
        .expect("the topic exists (scripts/infra.sh up creates it)");
    assert_eq!(topic.partitions().len(), TOPIC_PARTITIONS);

    // Enqueue everything first, interleaving the keys, then wait for every delivery.
    let mut deliveries = Vec::with_capacity(KEY_COUNT * MESSAGES_PER_KEY);
    for sequence in 0..MESSAGES_PER_KEY {
        for key in &keys {
            let body = payload(&run, key, sequence);
            let delivery = producer
                .send_result(FutureRecord::to(TOPIC).key(key).payload(&body))
                .map_err(|(error, _)| error)
                .expect("enqueue a message");
            deliveries.push((key.clone(), delivery));
        }
    }
    let mut partition_of_key: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for (key, delivery) in deliveries {
        let delivered = delivery
            .await
            .expect("the producer stays alive until delivery")
            .map_err(|(error, _)| error)
            .expect("the broker acknowledged the message");
        partition_of_key
            .entry(key)
            .or_default()
            .insert(delivered.partition);
    }
    for (key, partitions) in &partition_of_key {
        assert_eq!(
            partitions.len(),
            1,
            "{key} went to one partition: {partitions:?}"
        );
    }
    let used: BTreeSet<i32> = partition_of_key.values().flatten().copied().collect();
    assert!(
        used.len() > 1,
        "several keys spread over partitions: {used:?}"
    );

    let consumer = consumer(&brokers, &unique_name("wallex_it_group"));
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    let mut seen: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut seen_count = 0;
    let deadline = tokio::time::Instant::now() + CONSUME_TIMEOUT;
    while seen_count < KEY_COUNT * MESSAGES_PER_KEY {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("read {seen_count} of our messages within {CONSUME_TIMEOUT:?}")
            })
            .expect("a message from the consumer group");
        let Some(Ok(body)) = message.payload_view::<str>() else {
            continue;
        };
        let mut fields = body.split('|');
        let (Some(message_run), Some(key), Some(sequence)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if message_run != run {
            continue; // an earlier run's message
        }
        assert_eq!(message.key(), Some(key.as_bytes()), "the key is the wallet");
        let sequence: usize = sequence.parse().expect("a sequence number");
        seen.entry(key.to_owned()).or_default().push(sequence);
        seen_count += 1;
    }
    let in_order: Vec<usize> = (0..MESSAGES_PER_KEY).collect();
    for key in &keys {
        assert_eq!(
            seen.get(key),
            Some(&in_order),
            "{key}'s messages came back once each, in order"
        );
    }
}
