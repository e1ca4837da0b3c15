//! What `/metrics` exports beside the bus's consumer metrics.

use event_sink::{DeliveryError, Transience};
use prometheus::{IntCounter, IntCounterVec};

#[derive(Clone)]
pub struct Metrics {
    pub host: consumer_host::Metrics,
    /// Events the read model applied (new versions of wallets).
    pub read_model_applied: IntCounter,
    /// Events the read model had applied already (redeliveries).
    pub read_model_skipped: IntCounter,
    /// Transaction documents written to the search index.
    pub search_transactions_indexed: IntCounter,
    /// Failed attempts at a batch, by target (`read_model`, `search_index`,
    /// `search_offsets`: the search index's offsets not read or stored).
    pub batch_failures: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let host = consumer_host::Metrics::new()?;
        Ok(Self {
            read_model_applied: host.counter(
                "projection_read_model_events_applied_total",
                "Events the read model applied",
            )?,
            read_model_skipped: host.counter(
                "projection_read_model_events_skipped_total",
                "Events the read model had applied already",
            )?,
            search_transactions_indexed: host.counter(
                "projection_search_transactions_indexed_total",
                "Transaction documents written to the search index",
            )?,
            batch_failures: host.counter_vec(
                "projection_batch_failures_total",
                "Failed attempts at a batch, by target",
                &["target"],
            )?,
            host,
        })
    }

    /// Counts a failure of `target` (`read_model`, `search_index`) and
    /// classifies it by its own [`Transience`]: transient (retried until it
    /// passes) or permanent (dead-lettered in the end).
    pub fn failed(
        &self,
        target: &'static str,
        error: impl Transience + std::error::Error + Send + Sync + 'static,
    ) -> DeliveryError {
        self.batch_failures.with_label_values(&[target]).inc();
        DeliveryError::of(target, error)
    }
}
