//! What `/metrics` exports: the bus's consumer metrics and the projection's own.

use event_bus::ConsumerMetrics;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub consumer: ConsumerMetrics,
    /// Events the read model applied (new versions of wallets).
    pub read_model_applied: IntCounter,
    /// Events the read model had applied already (redeliveries).
    pub read_model_skipped: IntCounter,
    /// Transaction documents written to the search index.
    pub search_transactions_indexed: IntCounter,
    /// Failed attempts at a batch, by target (`read_model`, `search_index`).
    pub batch_failures: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let consumer = ConsumerMetrics::register(&registry)?;
        let read_model_applied = IntCounter::new(
            "projection_read_model_events_applied_total",
            "Events the read model applied",
        )?;
        let read_model_skipped = IntCounter::new(
            "projection_read_model_events_skipped_total",
            "Events the read model had applied already",
        )?;
        let search_transactions_indexed = IntCounter::new(
            "projection_search_transactions_indexed_total",
            "Transaction documents written to the search index",
        )?;
        let batch_failures = IntCounterVec::new(
            Opts::new(
                "projection_batch_failures_total",
                "Failed attempts at a batch, by target",
            ),
            &["target"],
        )?;
        registry.register(Box::new(read_model_applied.clone()))?;
        registry.register(Box::new(read_model_skipped.clone()))?;
        registry.register(Box::new(search_transactions_indexed.clone()))?;
        registry.register(Box::new(batch_failures.clone()))?;
        Ok(Self {
            registry,
            consumer,
            read_model_applied,
            read_model_skipped,
            search_transactions_indexed,
            batch_failures,
        })
    }
}
