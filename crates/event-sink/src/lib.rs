//! The one delivery contract of the log's events.
//!
//! Whatever takes events (the ledger, the read model, the search index, the
//! Kafka publisher) implements [`EventSink`] once, and both loops that deliver
//! use it: the in-process relay (`event-relay`, from the sink's checkpoint in
//! log order) and the Kafka consumer loop (`event-bus`, in partition order).
//! Delivery is at least once in both: a sink skips what it has taken before
//! (by event id, or by stream version), so a batch handed again after a crash
//! or a failure changes nothing twice.
//!
//! A failure is classified once, by the sink that knows its cause
//! ([`DeliveryError::transient`] or [`DeliveryError::permanent`]); each loop
//! decides what that means for it: both retry a transient failure without end
//! with capped backoff; a permanent failure parks what the sink refuses as a
//! dead letter (the Kafka loop on its dead-letter topic after its attempts,
//! the in-process relay in its dead-letter store when it has one), with every
//! later event of the same wallet behind it, and the sink goes on.

use async_trait::async_trait;
use event_store::{RecordedEvent, StoredEvent};

/// The cause of a [`DeliveryError`], kept for the log.
pub type DeliveryCause = Box<dyn std::error::Error + Send + Sync>;

/// A sink's failure to take a batch, classified by the sink.
#[derive(Debug, thiserror::Error)]
#[error("{sink}: {source}")]
pub struct DeliveryError {
    /// The sink (or the part of it) that failed, as named in logs and metrics.
    sink: &'static str,
    transient: bool,
    #[source]
    source: DeliveryCause,
}

impl DeliveryError {
    /// A failure that may pass by itself (a server away, a pool or a
    /// timeout, a 5xx or 429, a gap the next batch fills): retried without
    /// end, never dead-lettered.
    pub fn transient(sink: &'static str, error: impl Into<DeliveryCause>) -> Self {
        Self::classified(sink, error, true)
    }

    /// A failure that would repeat on the same events (undecodable, a
    /// constraint): dead-lettered (on Kafka after its attempts).
    pub fn permanent(sink: &'static str, error: impl Into<DeliveryCause>) -> Self {
        Self::classified(sink, error, false)
    }

    /// [`Self::transient`] when `transient`, else [`Self::permanent`].
    pub fn classified(
        sink: &'static str,
        error: impl Into<DeliveryCause>,
        transient: bool,
    ) -> Self {
        Self {
            sink,
            transient,
            source: error.into(),
        }
    }

    /// True when the failure may pass by itself and the batch is retried.
    pub fn is_transient(&self) -> bool {
        self.transient
    }
}

/// What takes the log's events.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Names the sink in logs, metrics and the dead-letter `handler` header.
    fn name(&self) -> &'static str;

    /// Position of the last event this sink has durably taken (0: none);
    /// for one fed by Kafka partitions, the furthest position it has taken.
    async fn checkpoint(&self) -> Result<u64, DeliveryError>;

    /// Takes a batch: in log order from the relay, in the order of its
    /// partitions from Kafka. On success every event is durably taken and
    /// the checkpoint has moved to the batch's furthest position; an event
    /// taken before is skipped. Called again with the same or a smaller
    /// batch after a failure.
    async fn deliver(&self, batch: &[RecordedEvent]) -> Result<(), DeliveryError>;

    /// Takes a batch as stored (the in-process relay hands these). The
    /// default decodes every event and calls [`EventSink::deliver`]: an event
    /// this build cannot decode fails the batch, permanently; a sink that
    /// moves bytes (the Kafka publisher) overrides it.
    async fn deliver_stored(&self, batch: &[StoredEvent]) -> Result<(), DeliveryError> {
        let decoded = batch
            .iter()
            .map(StoredEvent::decode)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| DeliveryError::permanent(self.name(), error))?;
        self.deliver(&decoded).await
    }
}
