//! The event bus on Apache Kafka, both directions.
//!
//! - [`KafkaPublisher`] is the outbox relay's [`event_sink::EventSink`]: it
//!   produces every event of a batch to the topic, keyed by wallet id (so one
//!   wallet's events keep their order in one partition), waits for every
//!   delivery report, and only then moves its checkpoint in PostgreSQL.
//! - [`run_consumer`] is the loop the consumers (ledger, projection) run: it
//!   hands bounded batches to an [`event_sink::EventSink`] (the contract the
//!   in-process relay feeds too), commits offsets after the
//!   handler succeeded (at least once), retries with backoff, and parks what
//!   cannot be handled on the dead-letter topic so the rest keeps flowing. A
//!   handler that stores the offsets with its writes (in PostgreSQL) is their
//!   authority: the loop hands it each batch's offsets and follows them.
//! - [`replay_dlq`] puts dead letters back on the main topic once the cause
//!   is fixed.
//! - [`KafkaProbe`] tells a health check whether the brokers answer.
//!
//! Error policy: Kafka and PostgreSQL failures are operating errors, returned
//! as [`BusError`] (or [`event_sink::DeliveryError`] through the sink) with their
//! cause; nothing here panics on I/O. Delivery is at least once everywhere:
//! consumers deduplicate by event id.

mod backlog;
mod checkpoint;
mod client_log;
mod closing;
mod config;
mod consumer;
mod dlq;
mod headers;
mod metrics;
mod names;
mod parked;
mod probe;
mod producer;
mod publisher;
mod stall;
mod stored_offsets;

pub use checkpoint::{
    group_progress, offsets_reach, read_checkpoint, store_checkpoint, GroupProgress,
    PublishedOffsets,
};
pub use config::{
    ConsumerConfig, PublisherConfig, CONSUMER_BATCH_SIZE_MAX_DEFAULT,
    CONSUMER_BATCH_WAIT_MS_DEFAULT, CONSUMER_FETCH_MIN_BYTES_DEFAULT,
    CONSUMER_FETCH_WAIT_MAX_MS_DEFAULT, CONSUMER_MAX_POLL_INTERVAL_MS_DEFAULT,
    CONSUMER_SESSION_TIMEOUT_MS_DEFAULT, DLQ_TOPIC_DEFAULT, HANDLER_ATTEMPTS_MAX_DEFAULT,
    HANDLER_BACKOFF_INITIAL_MS_DEFAULT, HANDLER_BACKOFF_MAX_MS_DEFAULT, HANDLER_TIMEOUT_MS_DEFAULT,
    KAFKA_REQUEST_TIMEOUT_MS_DEFAULT, PRODUCER_LINGER_MS_DEFAULT,
    PRODUCER_MESSAGE_TIMEOUT_MS_DEFAULT, PRODUCER_QUEUE_MESSAGES_MAX_DEFAULT,
    PUBLISHER_CHECKPOINT_NAME_DEFAULT, RECONNECT_BACKOFF_MAX_MS_DEFAULT, TOPIC_DEFAULT,
};
pub use consumer::{run_consumer, run_consumer_with_metrics};
pub use dlq::{dead_letters_to_replay, replay_dlq};
pub use headers::{
    HEADER_ERROR, HEADER_EVENT_ID, HEADER_EVENT_TYPE, HEADER_HANDLER, HEADER_POSITION,
    HEADER_REPLAYED_FOR, HEADER_SCHEMA_VERSION, HEADER_SOURCE_OFFSET, HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
};
pub use metrics::{ConsumerMetrics, PublisherMetrics};
pub use names::{brokers_list, topic_name, BrokersError, TopicNameError, TOPIC_NAME_LENGTH_MAX};
pub use parked::ParkedWallets;
pub use probe::{KafkaProbe, PROBE_CLIENT_RENEW_INTERVAL_MS};
pub use producer::{POLL_CYCLE_MS, QUEUE_FULL_RETRY_MS};
pub use publisher::KafkaPublisher;
pub use stall::{MEMBER_OUT_OF_GROUP_MAX_MS, MEMBER_REBALANCE_WAIT_MAX_MS, MEMBER_STALL_MAX_MS};

/// An operating error of the bus: Kafka or PostgreSQL refused or did not answer.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("kafka: {0}")]
    Delivery(String),
    #[error("postgresql: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("a blocking kafka call did not finish: {0}")]
    Blocking(#[from] tokio::task::JoinError),
    #[error("{0}")]
    Invalid(String),
    #[error("sink: {0}")]
    Sink(#[source] event_sink::DeliveryError),
}
