//! Counters of the publisher and of the consumer loop (Prometheus).

use prometheus::{IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

/// What the Kafka publisher has done.
#[derive(Clone)]
pub struct PublisherMetrics {
    pub events_published: IntCounter,
    pub batches_published: IntCounter,
    pub batches_failed: IntCounter,
}

impl PublisherMetrics {
    /// Counters registered in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self::unregistered()?;
        registry.register(Box::new(metrics.events_published.clone()))?;
        registry.register(Box::new(metrics.batches_published.clone()))?;
        registry.register(Box::new(metrics.batches_failed.clone()))?;
        Ok(metrics)
    }

    /// Counters no registry exports (for tests and tools).
    pub fn unregistered() -> Result<Self, prometheus::Error> {
        Ok(Self {
            events_published: IntCounter::new(
                "relay_events_published_total",
                "Events acknowledged by Kafka",
            )?,
            batches_published: IntCounter::new(
                "relay_batches_published_total",
                "Batches acknowledged by Kafka and checkpointed",
            )?,
            batches_failed: IntCounter::new(
                "relay_batches_failed_total",
                "Batches with a failed delivery or checkpoint (retried by the relay)",
            )?,
        })
    }
}

/// What consumer loops have done, labelled by handler.
#[derive(Clone)]
pub struct ConsumerMetrics {
    pub processed: IntCounterVec,
    pub dead_lettered: IntCounterVec,
    pub retries: IntCounterVec,
    pub commit_failures: IntCounterVec,
    /// Messages behind the partition's end after the last commit.
    pub lag: IntGaugeVec,
}

impl ConsumerMetrics {
    /// Metrics registered in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self::unregistered()?;
        registry.register(Box::new(metrics.processed.clone()))?;
        registry.register(Box::new(metrics.dead_lettered.clone()))?;
        registry.register(Box::new(metrics.retries.clone()))?;
        registry.register(Box::new(metrics.commit_failures.clone()))?;
        registry.register(Box::new(metrics.lag.clone()))?;
        Ok(metrics)
    }

    /// Metrics no registry exports (for tests and tools).
    pub fn unregistered() -> Result<Self, prometheus::Error> {
        Ok(Self {
            processed: IntCounterVec::new(
                Opts::new(
                    "consumer_messages_processed_total",
                    "Messages a handler took",
                ),
                &["handler"],
            )?,
            dead_lettered: IntCounterVec::new(
                Opts::new(
                    "consumer_messages_dead_lettered_total",
                    "Messages sent to the dead-letter topic",
                ),
                &["handler"],
            )?,
            retries: IntCounterVec::new(
                Opts::new(
                    "consumer_handler_retries_total",
                    "Handler calls repeated after a failure",
                ),
                &["handler"],
            )?,
            commit_failures: IntCounterVec::new(
                Opts::new(
                    "consumer_commit_failures_total",
                    "Offset commits Kafka refused (the messages come again)",
                ),
                &["handler"],
            )?,
            lag: IntGaugeVec::new(
                Opts::new(
                    "consumer_lag_messages",
                    "Messages between the last committed offset and the partition's end",
                ),
                &["handler", "partition"],
            )?,
        })
    }
}
