//! Counters of the publisher and of the consumer loop (Prometheus).

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// What the Kafka publisher has done.
#[derive(Clone)]
pub struct PublisherMetrics {
    pub events_published: IntCounter,
    pub batches_published: IntCounter,
    pub batches_failed: IntCounter,
    /// Producers replaced after a failed batch.
    pub producers_renewed: IntCounter,
}

impl PublisherMetrics {
    /// Counters registered in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self::unregistered()?;
        registry.register(Box::new(metrics.events_published.clone()))?;
        registry.register(Box::new(metrics.batches_published.clone()))?;
        registry.register(Box::new(metrics.batches_failed.clone()))?;
        registry.register(Box::new(metrics.producers_renewed.clone()))?;
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
            producers_renewed: IntCounter::new(
                "relay_producers_renewed_total",
                "Kafka producers replaced by a fresh client after a failed batch",
            )?,
        })
    }
}

/// What consumer loops have done, labelled by handler.
#[derive(Clone)]
pub struct ConsumerMetrics {
    pub processed: IntCounterVec,
    pub dead_lettered: IntCounterVec,
    /// Of the dead letters, events of a schema version this build cannot read
    /// (a newer writer during a rolling upgrade): replay them once upgraded.
    pub unknown_schema_parked: IntCounterVec,
    pub retries: IntCounterVec,
    pub commit_failures: IntCounterVec,
    /// 1 while the handler's last call failed transiently and is being retried.
    pub retrying: IntGaugeVec,
    /// Dead letters the next `replay-dlq` of this handler would read: from
    /// its replay group's committed offsets to the end of each DLQ partition
    /// (0 once replayed; another handler's dead letters on the shared topic
    /// count until this handler's replay steps over them).
    pub dead_letter_depth: IntGaugeVec,
    /// Messages behind the partition's end after the last commit.
    pub lag: IntGaugeVec,
    /// 1 while the member's last statistics said it is in its group
    /// (join state `steady`), 0 while it joins, rebalances or waits.
    pub in_group: IntGaugeVec,
    /// Members given up for a new one, by reason (`fatal`,
    /// `not_coordinator`, `partition_stalled`, `out_of_group`).
    pub members_replaced: IntCounterVec,
    /// From an event's occurred-at (set by command-api just before its
    /// append) to the moment its handler's write committed.
    pub event_lag_seconds: HistogramVec,
    /// Seeks back to a partition's stored offset because the messages
    /// fetched did not continue it (the stored offsets went back, or the
    /// client handed messages above a seek it had not applied yet).
    pub stored_offset_seeks: IntCounterVec,
    /// Messages retention deleted before the handler took them: what its
    /// storage will never hold (rebuild it from the event store).
    pub missed_to_retention: IntCounterVec,
    /// Partitions found ending below the offset the handler stored (the
    /// topic created again, or Kafka's tail lost), taken again from their
    /// first kept message.
    pub partition_restarts: IntCounterVec,
}

impl ConsumerMetrics {
    /// True while any handler of this process retries a transient failure.
    pub fn is_retrying(&self) -> bool {
        use prometheus::core::Collector;
        self.retrying
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .any(|metric| metric.get_gauge().get_value() > 0.0)
    }
}

impl ConsumerMetrics {
    /// Metrics registered in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self::unregistered()?;
        registry.register(Box::new(metrics.processed.clone()))?;
        registry.register(Box::new(metrics.dead_lettered.clone()))?;
        registry.register(Box::new(metrics.unknown_schema_parked.clone()))?;
        registry.register(Box::new(metrics.retries.clone()))?;
        registry.register(Box::new(metrics.commit_failures.clone()))?;
        registry.register(Box::new(metrics.retrying.clone()))?;
        registry.register(Box::new(metrics.dead_letter_depth.clone()))?;
        registry.register(Box::new(metrics.lag.clone()))?;
        registry.register(Box::new(metrics.in_group.clone()))?;
        registry.register(Box::new(metrics.members_replaced.clone()))?;
        registry.register(Box::new(metrics.event_lag_seconds.clone()))?;
        registry.register(Box::new(metrics.stored_offset_seeks.clone()))?;
        registry.register(Box::new(metrics.missed_to_retention.clone()))?;
        registry.register(Box::new(metrics.partition_restarts.clone()))?;
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
            unknown_schema_parked: IntCounterVec::new(
                Opts::new(
                    "consumer_unknown_schema_parked_total",
                    "Events of a schema version this build cannot read, parked on the dead-letter topic",
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
                    "Offset commits that could not be queued, as for partitions this member lost (the messages come again)",
                ),
                &["handler"],
            )?,
            retrying: IntGaugeVec::new(
                Opts::new(
                    "consumer_handler_retrying",
                    "1 while a transient handler failure is retried (the partitions wait)",
                ),
                &["handler"],
            )?,
            dead_letter_depth: IntGaugeVec::new(
                Opts::new(
                    "consumer_dead_letter_messages",
                    "Dead letters waiting for replay-dlq: from the replay group's committed offsets to the end of the dead-letter topic",
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
            in_group: IntGaugeVec::new(
                Opts::new(
                    "consumer_member_in_group",
                    "1 while the member's client reports it is in its consumer group (join state steady)",
                ),
                &["handler"],
            )?,
            members_replaced: IntCounterVec::new(
                Opts::new(
                    "consumer_members_replaced_total",
                    "Consumer group members given up for a new one, by reason",
                ),
                &["handler", "reason"],
            )?,
            event_lag_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "consumer_event_lag_seconds",
                    "Time from an event's occurrence to its handler's committed write",
                )
                .buckets(observability::EVENT_LAG_BUCKETS_SECONDS.to_vec()),
                &["handler"],
            )?,
            stored_offset_seeks: IntCounterVec::new(
                Opts::new(
                    "consumer_stored_offset_seeks_total",
                    "Seeks back to a partition's stored offset because the messages fetched did not continue it",
                ),
                &["handler"],
            )?,
            missed_to_retention: IntCounterVec::new(
                Opts::new(
                    "consumer_messages_missed_to_retention_total",
                    "Messages Kafka's retention deleted before the handler took them (its storage misses them: rebuild it)",
                ),
                &["handler"],
            )?,
            partition_restarts: IntCounterVec::new(
                Opts::new(
                    "consumer_partition_restarts_total",
                    "Partitions found ending below the handler's stored offset (the topic created again, or Kafka's tail lost), taken again from their first kept message",
                ),
                &["handler"],
            )?,
        })
    }
}
