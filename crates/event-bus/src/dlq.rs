//! Putting dead letters back on the main topic.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

use crate::backlog;
use crate::client_log::{self, KafkaConsumer};
use crate::config::ConsumerConfig;
use crate::consumer::blocking;
use crate::headers::{self, DLQ_HEADERS, HEADER_HANDLER, HEADER_REPLAYED_FOR};
use crate::producer::KafkaProducer;
use crate::BusError;

/// Bound on waiting for the next dead letter known to be there.
const DLQ_REPLAY_RECEIVE_TIMEOUT_MS: u64 = 30_000;

/// Where one DLQ partition's replay starts and ends.
struct PartitionPlan {
    partition: i32,
    start: i64,
    /// The high watermark when the replay began: later dead letters wait for the next replay.
    end: i64,
}

/// Republishes up to `limit` dead letters of `config.dlq_topic` that
/// `handler` parked (their `handler` header) to `config.topic` with their
/// original key and value (and their original headers, without the DLQ's),
/// in group `<group>-dlq-replay`, committing each one once the main topic has
/// acknowledged it; another handler's dead letters are stepped over (its own
/// replay group takes them). Reads only what the DLQ held when it was called;
/// returns how many were replayed.
pub async fn replay_dlq(
    config: &ConsumerConfig,
    handler: &str,
    limit: usize,
) -> Result<usize, BusError> {
    if limit == 0 {
        return Ok(0);
    }
    let client = ReplayGroupClient::open(config)?;
    let replayed = replay_through(&client.0, config, handler, limit).await;
    client.close().await;
    let replayed = replayed?;
    tracing::info!(replayed, topic = %config.topic, dlq = %config.dlq_topic, "dead letters replayed");
    Ok(replayed)
}

/// [`replay_dlq`]'s work, with `consumer` in the replay group.
async fn replay_through(
    consumer: &Arc<KafkaConsumer>,
    config: &ConsumerConfig,
    handler: &str,
    limit: usize,
) -> Result<usize, BusError> {
    let producer: KafkaProducer = client_log::create(&config.producer_client_config())?;
    if let Some(parked) = &config.parked {
        parked.unstall(handler).await?;
    }
    let plans = plan(consumer, config).await?;
    let mut assignment = TopicPartitionList::with_capacity(plans.len());
    for plan in &plans {
        assignment.add_partition_offset(
            &config.dlq_topic,
            plan.partition,
            Offset::Offset(plan.start),
        )?;
    }
    let mut remaining: BTreeMap<i32, i64> = plans
        .iter()
        .map(|plan| (plan.partition, plan.end))
        .collect();
    if remaining.is_empty() {
        return Ok(0);
    }
    consumer.assign(&assignment)?;
    let receive_timeout = Duration::from_millis(DLQ_REPLAY_RECEIVE_TIMEOUT_MS);
    let queue_timeout = Duration::from_millis(config.message_timeout_ms);
    let mut replayed = 0;
    while replayed < limit && !remaining.is_empty() {
        let message = tokio::time::timeout(receive_timeout, consumer.recv())
            .await
            .map_err(|_| {
                BusError::Delivery(format!(
                    "the dead-letter topic sent nothing for {DLQ_REPLAY_RECEIVE_TIMEOUT_MS} ms"
                ))
            })??
            .detach();
        let partition = message.partition();
        let offset = message.offset();
        let Some(&end) = remaining.get(&partition) else {
            continue;
        };
        if offset >= end {
            remaining.remove(&partition);
            continue;
        }
        let parked_by = headers::value(message.headers(), HEADER_HANDLER);
        if parked_by.as_deref() == Some(handler) {
            let original_headers = headers::with(
                headers::copy_without(message.headers(), &DLQ_HEADERS),
                HEADER_REPLAYED_FOR,
                handler,
            );
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&config.topic).headers(original_headers);
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(payload) = message.payload() {
                record = record.payload(payload);
            }
            producer
                .send(record, queue_timeout)
                .await
                .map_err(BusError::Kafka)?;
            replayed += 1;
        }
        let mut done = TopicPartitionList::with_capacity(1);
        done.add_partition_offset(&config.dlq_topic, partition, Offset::Offset(offset + 1))?;
        blocking(consumer, move |consumer| {
            consumer.commit(&done, CommitMode::Sync)?;
            Ok(())
        })
        .await?;
        if offset + 1 >= end {
            remaining.remove(&partition);
        }
    }
    Ok(replayed)
}

/// A client in `config`'s dead-letter replay group (`<group>-dlq-replay`),
/// never subscribed: it reads and commits that group's offsets.
pub(crate) struct ReplayGroupClient(pub(crate) Arc<KafkaConsumer>);

impl ReplayGroupClient {
    pub(crate) fn open(config: &ConsumerConfig) -> Result<Self, BusError> {
        let consumer =
            client_log::create(&config.consumer_client_config(&config.dlq_replay_group_id()))?;
        Ok(Self(Arc::new(consumer)))
    }

    /// Closes the client off the async runtime (rdkafka's close blocks).
    async fn close(self) {
        let closing = tokio::task::spawn_blocking(move || drop(self.0)).await;
        if let Err(error) = closing {
            tracing::warn!(%error, "the DLQ replay group's client did not close cleanly");
        }
    }
}

/// For each DLQ partition with something to replay: from the replay group's
/// committed offset (or the partition's start) to its current end.
async fn plan(
    consumer: &Arc<KafkaConsumer>,
    config: &ConsumerConfig,
) -> Result<Vec<PartitionPlan>, BusError> {
    let topic = config.dlq_topic.clone();
    let timeout = Duration::from_millis(config.request_timeout_ms);
    blocking(consumer, move |consumer| {
        replay_plan(consumer, &topic, timeout)
    })
    .await
}

/// Dead letters the next [`replay_dlq`] of `config`'s group would read (the
/// `consumer_dead_letter_messages` gauge): from the replay group's committed
/// offsets to the end of each partition of `config.dlq_topic`.
pub async fn dead_letters_to_replay(config: &ConsumerConfig) -> Result<i64, BusError> {
    let client = ReplayGroupClient::open(config)?;
    let topic = config.dlq_topic.clone();
    let timeout = Duration::from_millis(config.request_timeout_ms);
    let waiting = blocking(&client.0, move |consumer| {
        dead_letters_waiting(consumer, &topic, timeout)
    })
    .await;
    client.close().await;
    waiting
}

/// Dead letters the next replay of `consumer`'s group would read (every
/// handler's: a replay steps over another handler's and commits past them),
/// summed over the partitions of `topic`; 0 right after a replay.
pub(crate) fn dead_letters_waiting(
    consumer: &KafkaConsumer,
    topic: &str,
    timeout: Duration,
) -> Result<i64, BusError> {
    Ok(replay_plan(consumer, topic, timeout)?
        .iter()
        .map(|plan| plan.end - plan.start)
        .sum())
}

/// [`plan`], for a consumer in the replay group; `timeout` bounds each request.
fn replay_plan(
    consumer: &KafkaConsumer,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<PartitionPlan>, BusError> {
    let read = backlog::read(consumer, topic, timeout)?;
    if let Some(error) = read.commits_unread {
        return Err(error.into());
    }
    Ok(read
        .partitions
        .iter()
        .filter(|partition| partition.waiting() > 0)
        .map(|partition| PartitionPlan {
            partition: partition.partition,
            start: partition.start(),
            end: partition.high,
        })
        .collect())
}
