//! What `/metrics` exports beside the bus's consumer metrics.

use prometheus::IntCounter;

#[derive(Clone)]
pub struct Metrics {
    pub host: consumer_host::Metrics,
    /// Events posted as ledger transactions.
    pub events_posted: IntCounter,
    /// Events posted before (redeliveries), skipped by event id.
    pub duplicates_skipped: IntCounter,
    /// Batches committed to the ledger.
    pub batches_posted: IntCounter,
    /// Attempts at a batch the ledger refused or could not store.
    pub batch_failures: IntCounter,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let host = consumer_host::Metrics::new()?;
        Ok(Self {
            events_posted: host.counter(
                "ledger_events_posted_total",
                "Events posted as ledger transactions",
            )?,
            duplicates_skipped: host.counter(
                "ledger_duplicates_skipped_total",
                "Events the ledger had posted already (redeliveries)",
            )?,
            batches_posted: host.counter(
                "ledger_batches_posted_total",
                "Batches committed to the ledger",
            )?,
            batch_failures: host.counter(
                "ledger_batch_failures_total",
                "Attempts at a batch the ledger refused or could not store",
            )?,
            host,
        })
    }
}
