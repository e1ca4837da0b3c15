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
//!
//! A sink that keeps the Kafka consumer's offsets in its own storage (the
//! ledger and the read model in PostgreSQL) answers
//! [`EventSink::stored_offsets`]; the Kafka loop then hands it, with each
//! batch, the [`ConsumerOffsets`] to move in the same transaction as the
//! batch's writes ([`EventSink::deliver_consumed`]), so the offsets can never
//! be ahead of what the storage still holds. A sink whose writes cannot join
//! that transaction (the search index on Elasticsearch) moves them right
//! after its writes, which are idempotent: a refusal may then follow writes
//! that a later delivery repeats harmlessly. The relay hands none.

mod awaiting_record;

use std::collections::BTreeMap;

use async_trait::async_trait;
use event_store::{RecordedEvent, StoredEvent};

pub use awaiting_record::{AwaitingRecord, BatchKey};

/// The cause of a [`DeliveryError`], kept for the log.
pub type DeliveryCause = Box<dyn std::error::Error + Send + Sync>;

/// A sink's failure to take a batch, classified by the sink.
#[derive(Debug, thiserror::Error)]
#[error("{sink}: {source}")]
pub struct DeliveryError {
    /// The sink (or the part of it) that failed, as named in logs and metrics.
    sink: &'static str,
    kind: FailureKind,
    #[source]
    source: DeliveryCause,
}

/// How a loop treats a [`DeliveryError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    Transient,
    Permanent,
    OffsetsMoved,
}

/// The offset of one partition a batch moves, from the one the consumer
/// believes is stored to the one after the batch's last message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetMove {
    /// The Kafka partition.
    pub partition: i32,
    /// The next offset the consumer believes is stored; `None`: no row yet.
    pub expected: Option<i64>,
    /// The next offset to store: the batch's last offset in the partition, plus one.
    pub next: i64,
}

/// The offsets a Kafka batch moves, written by the sink in the same
/// transaction as the batch, on the condition that every partition still
/// holds its `expected` offset (like an expected stream version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerOffsets {
    /// The consumer group.
    pub group: String,
    /// The topic the batch came from.
    pub topic: String,
    /// One move per partition of the batch.
    pub partitions: Vec<OffsetMove>,
}

impl ConsumerOffsets {
    /// Each partition's move as `(partition, expected, next)`.
    pub fn moves(&self) -> impl Iterator<Item = (i32, Option<i64>, i64)> + '_ {
        self.partitions
            .iter()
            .map(|moved| (moved.partition, moved.expected, moved.next))
    }
}

/// The stored offsets were not the ones a [`ConsumerOffsets`] expected.
#[derive(Debug, thiserror::Error)]
#[error("the stored offsets of consumer group {group} on {topic} are not the expected ones; nothing of the batch was written")]
pub struct OffsetsMoved {
    /// The consumer group.
    pub group: String,
    /// The topic.
    pub topic: String,
}

impl OffsetsMoved {
    /// The refusal of `offsets`.
    pub fn of(offsets: &ConsumerOffsets) -> Self {
        Self {
            group: offsets.group.clone(),
            topic: offsets.topic.clone(),
        }
    }
}

/// Next offsets stored for a consumer group on a topic, by partition.
pub type StoredOffsets = BTreeMap<i32, i64>;

/// A sink's own error, which knows whether it may pass by itself (a server
/// away, a lock or a statement timed out) or would fail again on the same
/// events: how [`DeliveryError::of`] classifies it.
pub trait Transience {
    /// True when the same call may succeed later.
    fn is_transient(&self) -> bool;
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

    /// `error` classified by its own [`Transience`].
    pub fn of<E>(sink: &'static str, error: E) -> Self
    where
        E: Transience + Into<DeliveryCause>,
    {
        let transient = error.is_transient();
        Self::classified(sink, error, transient)
    }

    /// [`Self::transient`] when `transient`, else [`Self::permanent`].
    pub fn classified(
        sink: &'static str,
        error: impl Into<DeliveryCause>,
        transient: bool,
    ) -> Self {
        let kind = if transient {
            FailureKind::Transient
        } else {
            FailureKind::Permanent
        };
        Self {
            sink,
            kind,
            source: error.into(),
        }
    }

    /// The stored consumer offsets were not the expected ones (the storage
    /// went back in time, or another member of the group moved them):
    /// nothing of the batch was written, and the Kafka loop seeks its
    /// partitions to the stored offsets rather than retry.
    pub fn offsets_moved(sink: &'static str, error: impl Into<DeliveryCause>) -> Self {
        Self {
            sink,
            kind: FailureKind::OffsetsMoved,
            source: error.into(),
        }
    }

    /// True when the failure may pass by itself and the batch is retried.
    pub fn is_transient(&self) -> bool {
        self.kind == FailureKind::Transient
    }

    /// True when the batch was refused because the stored consumer offsets moved.
    pub fn is_offsets_moved(&self) -> bool {
        self.kind == FailureKind::OffsetsMoved
    }
}

/// What takes the log's events.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Names the sink in logs, metrics and the dead-letter `handler` header.
    fn name(&self) -> &'static str;

    /// Position of the last event this sink has durably taken (0: none);
    /// for one fed by Kafka partitions, the furthest position it has taken;
    /// 0 from a sink that keeps no position of its own (its progress is its
    /// consumer group's stored offsets), which a relay would hand everything.
    async fn checkpoint(&self) -> Result<u64, DeliveryError>;

    /// Takes a batch: in log order from the relay, in the order of its
    /// partitions from Kafka. On success every event is durably taken and
    /// the checkpoint has moved to the batch's furthest position; an event
    /// taken before is skipped. Called again with the same or a smaller
    /// batch after a failure.
    async fn deliver(&self, batch: &[RecordedEvent]) -> Result<(), DeliveryError>;

    /// The next offsets this sink stores for consumer `group` on `topic`
    /// (an empty map: none yet), or `None` when it keeps no consumer offsets
    /// and Kafka's committed offsets rule (the default).
    async fn stored_offsets(
        &self,
        _group: &str,
        _topic: &str,
    ) -> Result<Option<StoredOffsets>, DeliveryError> {
        Ok(None)
    }

    /// Takes a batch from Kafka as [`EventSink::deliver`] does and moves
    /// `offsets` in the same transaction (or, for writes that cannot join
    /// one, right after them); fails with [`DeliveryError::offsets_moved`]
    /// when a partition's stored offset is not its expected one, having
    /// written nothing (or only idempotent writes a later delivery repeats). The Kafka loop calls it only
    /// on a sink whose [`EventSink::stored_offsets`] answers `Some`; the
    /// default, for a sink that keeps none, is [`EventSink::deliver`].
    async fn deliver_consumed(
        &self,
        batch: &[RecordedEvent],
        _offsets: &ConsumerOffsets,
    ) -> Result<(), DeliveryError> {
        self.deliver(batch).await
    }

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

/// Implements [`EventSink`] for `$sink`, a projection that keeps its
/// checkpoint beside its rows: `$checkpoint(&sink)` reads the checkpoint, and
/// `$apply(&sink, batch, last_position)` applies a batch and moves the
/// checkpoint to its last position in the same transaction. Both return
/// `Result<_, E>` with `E:` [`Transience`]; the sink is named `$name` in logs
/// and metrics. The crate using it depends on `async-trait` and `event-store`.
#[macro_export]
macro_rules! checkpointed_sink {
    ($sink:ty, name: $name:expr, checkpoint: $checkpoint:path, apply: $apply:path $(,)?) => {
        #[async_trait::async_trait]
        impl $crate::EventSink for $sink {
            fn name(&self) -> &'static str {
                $name
            }

            async fn checkpoint(&self) -> Result<u64, $crate::DeliveryError> {
                $checkpoint(self)
                    .await
                    .map_err(|error| $crate::DeliveryError::of($name, error))
            }

            async fn deliver(
                &self,
                batch: &[event_store::RecordedEvent],
            ) -> Result<(), $crate::DeliveryError> {
                let last_position = batch.last().map(|recorded| recorded.position);
                $apply(self, batch, last_position)
                    .await
                    .map(drop)
                    .map_err(|error| $crate::DeliveryError::of($name, error))
            }
        }
    };
}
