//! The relay's sink: every event to Kafka, keyed by wallet, acknowledged
//! before the checkpoint moves.
//!
//! Events are published as stored: the message is the envelope (position,
//! stream version) around the event's stored JSON, unchanged, and only the
//! fields every schema version keeps ([`event_store::EventHeader`]) are read
//! for the key and the headers. An event of a schema version this build does
//! not know is published like any other; consumers park what they cannot read.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use event_sink::{AwaitingRecord, BatchKey, DeliveryError, EventSink};
use event_store::{RecordedEvent, StoredEvent};
use observability::{FailureStreak, Failures};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::FutureRecord;
use sqlx::PgPool;

use crate::checkpoint::{read_checkpoint, store_checkpoint, PublishedOffsets};
use crate::client_log;
use crate::config::PublisherConfig;
use crate::headers::{
    self, HEADER_EVENT_ID, HEADER_EVENT_TYPE, HEADER_POSITION, HEADER_SCHEMA_VERSION,
};
use crate::metrics::PublisherMetrics;
use crate::probe::{topic_known, ProbeRenewal};
use crate::producer::{DeliveryFuture, KafkaProducer};
use crate::BusError;

const SINK_NAME: &str = "kafka";
/// How much longer than the producer's own message timeout a batch may wait
/// for its delivery reports before it counts as failed (and the producer is
/// renewed): librdkafka times every message out by then, so a longer wait
/// means a client that stopped reporting.
const DELIVERY_WAIT_MARGIN_MS: u64 = 5_000;

pub struct KafkaPublisher {
    /// Renewed after a failed batch ([`KafkaPublisher::renew_producer`]).
    producer: Mutex<KafkaProducer>,
    pool: PgPool,
    config: PublisherConfig,
    metrics: PublisherMetrics,
    /// The last batch Kafka acknowledged whose checkpoint PostgreSQL did not
    /// store (read-only during a failover, away), with what its publication
    /// left on each partition: handed again, it is not published again, only
    /// its checkpoint is stored.
    unstored: AwaitingRecord<PublishedOffsets>,
    /// The batches that failed since the last one published and
    /// checkpointed, for the relay's `/health`.
    failures: FailureStreak,
    /// When a failed probe may renew the producer.
    probe_renewal: ProbeRenewal,
}

impl KafkaPublisher {
    /// A publisher to `config.topic` keeping its checkpoint in `pool`'s
    /// `relay_checkpoints` (migration 0004). Connects lazily: a broker that
    /// is down shows in [`KafkaPublisher::probe`] and in failed batches.
    pub fn new(
        config: PublisherConfig,
        pool: PgPool,
        metrics: PublisherMetrics,
    ) -> Result<Self, BusError> {
        let producer: KafkaProducer = client_log::create(&config.client_config())?;
        Ok(Self {
            producer: Mutex::new(producer),
            pool,
            config,
            metrics,
            unstored: AwaitingRecord::default(),
            failures: FailureStreak::default(),
            probe_renewal: ProbeRenewal::default(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.config.topic
    }

    /// The batches that failed (to be published, or their checkpoint to be
    /// stored) since the last that passed; `None` while they pass, or when
    /// none failed within [`observability::FAILURE_REPORT_MS`]. Kafka and
    /// PostgreSQL may both answer a probe while every batch fails (a topic
    /// whose replicas are too few to take a write, a PostgreSQL that went
    /// read-only).
    pub fn failures(&self) -> Option<Failures> {
        self.failures.failures()
    }

    /// Publishes `batch`, waiting for Kafka's reports at most the message
    /// timeout and a margin.
    async fn produce_within_timeout(
        &self,
        batch: &[StoredEvent],
    ) -> Result<PublishedOffsets, BusError> {
        let wait = Duration::from_millis(self.config.message_timeout_ms + DELIVERY_WAIT_MARGIN_MS);
        tokio::time::timeout(wait, self.produce_all(batch))
            .await
            .unwrap_or_else(|_| {
                Err(BusError::Delivery(format!(
                    "no delivery report within {} ms",
                    wait.as_millis()
                )))
            })
    }

    /// The producer in use (a handle: clones share one librdkafka client).
    fn producer(&self) -> KafkaProducer {
        self.producer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the producer after a failed batch. An idempotent producer
    /// whose broker died can stay unable to deliver after the broker is back
    /// (seen in the fault suite: no delivery for over a minute after a
    /// `kill -9` of Kafka, until the relay was restarted); a fresh client
    /// connects and takes a new producer id. The batch is sent again from
    /// the checkpoint, as after any failure: at least once, and every
    /// consumer skips an event it has already taken.
    fn renew_producer(&self) {
        match client_log::create::<KafkaProducer>(&self.config.client_config()) {
            Ok(fresh) => {
                let stale = std::mem::replace(
                    &mut *self.producer.lock().unwrap_or_else(PoisonError::into_inner),
                    fresh,
                );
                self.metrics.producers_renewed.inc();
                crate::closing::close_detached(stale);
            }
            Err(error) => {
                tracing::warn!(%error, "kafka producer could not be renewed; keeping the old one");
            }
        }
    }

    /// Whether the brokers answer and know the topic (for health checks).
    /// After a probe that failed or was dropped unanswered, the producer is
    /// renewed first, at most once per
    /// [`crate::PROBE_CLIENT_RENEW_INTERVAL_MS`]: command-api's status probe
    /// never publishes, so no failed batch would ever renew it.
    pub async fn probe(&self) -> Result<(), BusError> {
        let check = || {
            let client = self.producer();
            let topic = self.config.topic.clone();
            let timeout = Duration::from_millis(self.config.request_timeout_ms);
            move || topic_known(client.client(), &topic, timeout)
        };
        self.probe_renewal
            .probe(|| self.renew_producer(), check)
            .await
    }

    /// Produces the whole batch and waits for every delivery report, even
    /// after a failure, so that a retry never races this attempt's messages.
    /// Answers where the batch left each partition it published to.
    async fn produce_all(&self, batch: &[StoredEvent]) -> Result<PublishedOffsets, BusError> {
        if batch.len() > self.config.queue_messages_max {
            return Err(BusError::Invalid(format!(
                "a batch of {} events exceeds the producer queue of {}",
                batch.len(),
                self.config.queue_messages_max
            )));
        }
        let producer = self.producer();
        let mut deliveries: Vec<DeliveryFuture> = Vec::with_capacity(batch.len());
        let mut first_error: Option<BusError> = None;
        let mut published = PublishedOffsets::new();
        for event in batch {
            match self.enqueue(&producer, event) {
                Ok(delivery) => deliveries.push(delivery),
                Err(error) => {
                    first_error = Some(error);
                    break;
                }
            }
        }
        for delivery in deliveries {
            let outcome = match delivery.await {
                Ok(Ok(delivered)) => {
                    let next = published.entry(delivered.partition).or_default();
                    *next = (*next).max(delivered.offset + 1);
                    Ok(())
                }
                Ok(Err(error)) => Err(BusError::Kafka(error)),
                Err(_canceled) => Err(BusError::Delivery(
                    "the producer went away before reporting".to_owned(),
                )),
            };
            if let (Err(error), None) = (outcome, first_error.as_ref()) {
                first_error = Some(error);
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(published),
        }
    }

    fn enqueue(
        &self,
        producer: &KafkaProducer,
        event: &StoredEvent,
    ) -> Result<DeliveryFuture, BusError> {
        let unreadable = |error: serde_json::Error| {
            BusError::Invalid(format!(
                "the stored event at position {} has no readable envelope: {error}",
                event.position
            ))
        };
        let header = event.header().map_err(unreadable)?;
        let value = event.to_envelope_json().map_err(unreadable)?;
        let event_id = header.event_id.to_string();
        let position = event.position.to_string();
        let schema_version = header.schema_version.to_string();
        let headers = [
            (HEADER_EVENT_ID, event_id.as_str()),
            (HEADER_EVENT_TYPE, header.event_type.as_str()),
            (HEADER_POSITION, position.as_str()),
            (HEADER_SCHEMA_VERSION, schema_version.as_str()),
        ]
        .into_iter()
        .fold(
            OwnedHeaders::new_with_capacity(4),
            |headers, (name, value)| headers::with(headers, name, value),
        );
        let record = FutureRecord::to(&self.config.topic)
            .key(header.wallet_id.as_str())
            .payload(&value)
            .headers(headers);
        producer.send_result(record).map_err(|error| match error {
            KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => BusError::Delivery(
                "the producer queue is full (queue_messages_max too small for the batch)"
                    .to_owned(),
            ),
            other => BusError::Kafka(other),
        })
    }
}

#[async_trait]
impl EventSink for KafkaPublisher {
    fn name(&self) -> &'static str {
        SINK_NAME
    }

    async fn checkpoint(&self) -> Result<u64, DeliveryError> {
        read_checkpoint(&self.pool, &self.config.checkpoint_name)
            .await
            .map_err(|error| DeliveryError::transient(SINK_NAME, error))
    }

    async fn deliver(&self, batch: &[RecordedEvent]) -> Result<(), DeliveryError> {
        let stored = batch
            .iter()
            .map(StoredEvent::from_recorded)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| DeliveryError::permanent(SINK_NAME, error))?;
        self.deliver_stored(&stored).await
    }

    async fn deliver_stored(&self, batch: &[StoredEvent]) -> Result<(), DeliveryError> {
        let Some(last) = batch.last().map(|event| event.position) else {
            return Ok(());
        };
        let key = BatchKey::of_stored(batch);
        let produced = match self.unstored.take(key) {
            Some(published) => Ok(published),
            None => self.produce_within_timeout(batch).await,
        };
        let outcome = match produced {
            Ok(published) => {
                let stored = store_checkpoint(
                    &self.pool,
                    &self.config.checkpoint_name,
                    last,
                    &self.config.topic,
                    &published,
                )
                .await
                .map_err(BusError::from);
                if stored.is_err() {
                    self.unstored.hold(key, published);
                }
                stored
            }
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => {
                self.metrics.events_published.inc_by(batch.len() as u64);
                self.metrics.batches_published.inc();
                self.failures.passed();
                Ok(())
            }
            Err(error) => {
                self.metrics.batches_failed.inc();
                self.failures.failed(&error);
                if matches!(error, BusError::Kafka(_) | BusError::Delivery(_)) {
                    self.renew_producer();
                }
                let transient = !matches!(error, BusError::Invalid(_));
                Err(DeliveryError::classified(SINK_NAME, error, transient))
            }
        }
    }
}
