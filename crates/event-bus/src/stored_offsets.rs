//! The consumer offsets a sink stores with its writes, as this member of the
//! group believes them: which fetched messages to hand, which to skip, where
//! to seek back, and the [`ConsumerOffsets`] each handed batch moves.
//!
//! The sink's storage is the authority, Kafka's committed offsets are not:
//! a message below a partition's stored offset was applied and is skipped; a
//! partition whose messages start above its stored offset is sought back to
//! it (once: what arrives right after that seek is taken, since Kafka offsets
//! need not be contiguous, with retention or control records); and a batch
//! the sink refuses because the stored offsets moved (the storage went back
//! in time, or another member moved them) makes this member read them again
//! and seek every partition of the batch there.
//!
//! librdkafka refuses a seek on a partition it is not fetching at that moment
//! ("Local: Erroneous state", as while a partition is being assigned again
//! after a broker came back). The messages of a partition to seek back are
//! dropped from the batch either way, so a refused seek is kept pending and
//! tried again on the loop's next turn ([`StoredPositions::retry_seeks`]),
//! even when no further message comes on that partition; without that, the
//! dropped messages waited for the partition's next message (or rebalance),
//! and after the last writes of a run they never came.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use event_sink::{ConsumerOffsets, OffsetMove, StoredOffsets};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::Offset;

use crate::client_log::KafkaConsumer;
use crate::consumer::blocking;

/// What this member believes of one partition.
#[derive(Debug, Clone, Copy, Default)]
struct Partition {
    /// The stored next offset; `None`: no row (a new group, or one that
    /// stored its offsets only in Kafka before): Kafka's position is taken.
    next: Option<i64>,
    /// Sought to `next` and nothing taken since: the first message that
    /// comes is taken even if it starts above `next`.
    sought: bool,
}

/// The stored offsets of one group on one topic, as believed by this member.
pub(crate) struct StoredPositions {
    group: String,
    topic: String,
    partitions: HashMap<i32, Partition>,
    /// Seeks librdkafka refused, by partition, tried again on every turn of
    /// the loop (at most one attempt each per turn) until one passes or the
    /// partition leaves this member.
    pending_seeks: BTreeMap<i32, Offset>,
    seek_timeout: Duration,
}

/// A fetched batch sorted out against the stored offsets.
pub(crate) struct Sorted {
    /// The messages to hand to the sink, in fetch order.
    pub(crate) to_handle: Vec<OwnedMessage>,
    /// Partitions sought back: none of their fetched messages may be committed to Kafka.
    pub(crate) sought: BTreeSet<i32>,
}

impl StoredPositions {
    /// The positions of `group` on `topic` as the sink answered them;
    /// `seek_timeout` bounds each seek.
    pub(crate) fn new(
        group: &str,
        topic: &str,
        stored: StoredOffsets,
        seek_timeout: Duration,
    ) -> Self {
        let mut positions = Self {
            group: group.to_owned(),
            topic: topic.to_owned(),
            partitions: HashMap::new(),
            pending_seeks: BTreeMap::new(),
            seek_timeout,
        };
        positions.reset(stored);
        positions
    }

    /// Believes `stored`, and nothing of what this member thought before.
    fn reset(&mut self, stored: StoredOffsets) {
        self.partitions = stored
            .into_iter()
            .map(|(partition, next)| {
                let believed = Partition {
                    next: Some(next),
                    sought: false,
                };
                (partition, believed)
            })
            .collect();
    }

    /// Skips the messages below their partition's stored offset and seeks
    /// back a partition whose messages start above it (unless it was just
    /// sought there), dropping its messages from the batch.
    pub(crate) async fn sort(
        &mut self,
        consumer: &Arc<KafkaConsumer>,
        messages: Vec<OwnedMessage>,
    ) -> Sorted {
        let mut first_kept: BTreeMap<i32, i64> = BTreeMap::new();
        let mut kept = Vec::with_capacity(messages.len());
        for message in messages {
            let believed = self.partition(message.partition());
            if believed.next.is_some_and(|next| message.offset() < next) {
                tracing::debug!(
                    group = %self.group,
                    partition = message.partition(),
                    offset = message.offset(),
                    "skipping a message below the stored offset: applied already"
                );
                continue;
            }
            first_kept
                .entry(message.partition())
                .or_insert(message.offset());
            kept.push(message);
        }
        let mut sought = BTreeSet::new();
        for (partition, first) in first_kept {
            let believed = self.partition(partition);
            match believed.next {
                Some(next) if first > next && !believed.sought => {
                    tracing::warn!(
                        group = %self.group,
                        partition,
                        stored = next,
                        fetched = first,
                        "messages start above the stored offset; seeking back to it"
                    );
                    self.seek(consumer, partition, Offset::Offset(next)).await;
                    sought.insert(partition);
                }
                _ => {}
            }
        }
        kept.retain(|message| !sought.contains(&message.partition()));
        Sorted {
            to_handle: kept,
            sought,
        }
    }

    /// The offsets handing `messages` moves: each partition from its believed
    /// offset to the one after its last message there.
    pub(crate) fn moves_of(&self, messages: &[&OwnedMessage]) -> ConsumerOffsets {
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for message in messages {
            let entry = next.entry(message.partition()).or_insert(0);
            *entry = (*entry).max(message.offset() + 1);
        }
        ConsumerOffsets {
            group: self.group.clone(),
            topic: self.topic.clone(),
            partitions: next
                .into_iter()
                .map(|(partition, next)| OffsetMove {
                    partition,
                    expected: self.partition(partition).next,
                    next,
                })
                .collect(),
        }
    }

    /// The sink stored `offsets`.
    pub(crate) fn stored(&mut self, offsets: &ConsumerOffsets) {
        for moved in &offsets.partitions {
            self.partitions.insert(
                moved.partition,
                Partition {
                    next: Some(moved.next),
                    sought: false,
                },
            );
        }
    }

    /// The sink refused `offsets` because the stored ones moved: believes
    /// `stored` (read again) and seeks the refused partitions there (to the
    /// partition's start when it has no row any more: whatever was applied
    /// is skipped by the sink).
    pub(crate) async fn moved(
        &mut self,
        consumer: &Arc<KafkaConsumer>,
        offsets: &ConsumerOffsets,
        stored: StoredOffsets,
    ) {
        tracing::warn!(
            group = %self.group,
            topic = %self.topic,
            believed = ?offsets.partitions,
            stored = ?stored,
            "stored consumer offsets moved; seeking to them"
        );
        self.reset(stored);
        for moved in &offsets.partitions {
            let to = self
                .partition(moved.partition)
                .next
                .map_or(Offset::Beginning, Offset::Offset);
            self.seek(consumer, moved.partition, to).await;
        }
    }

    fn partition(&self, partition: i32) -> Partition {
        self.partitions.get(&partition).copied().unwrap_or_default()
    }

    /// Tries again every seek librdkafka refused, and forgets those of
    /// partitions no longer assigned to this member (their next owner starts
    /// from Kafka's commit, which never passes the stored offset, and skips
    /// up to it).
    pub(crate) async fn retry_seeks(&mut self, consumer: &Arc<KafkaConsumer>) {
        if self.pending_seeks.is_empty() {
            return;
        }
        let topic = self.topic.clone();
        let assigned = blocking(consumer, move |consumer| {
            let assignment = consumer.assignment()?;
            Ok(assignment
                .elements_for_topic(&topic)
                .iter()
                .map(|element| element.partition())
                .collect::<BTreeSet<i32>>())
        })
        .await;
        match assigned {
            Ok(assigned) => self
                .pending_seeks
                .retain(|partition, _| assigned.contains(partition)),
            Err(error) => {
                tracing::warn!(%error, group = %self.group, "cannot read this member's assignment");
            }
        }
        let pending: Vec<(i32, Offset)> = self
            .pending_seeks
            .iter()
            .map(|(partition, offset)| (*partition, *offset))
            .collect();
        for (partition, offset) in pending {
            self.seek(consumer, partition, offset).await;
        }
    }

    /// Seeks `partition` to `offset`. A refused seek is kept pending for
    /// [`StoredPositions::retry_seeks`]; meanwhile the stored offset still
    /// rules the partition's next batch, here or at a new owner.
    async fn seek(&mut self, consumer: &Arc<KafkaConsumer>, partition: i32, offset: Offset) {
        let topic = self.topic.clone();
        let timeout = self.seek_timeout;
        let sought = blocking(consumer, move |consumer| {
            consumer.seek(&topic, partition, offset, timeout)?;
            Ok(())
        })
        .await;
        match sought {
            Ok(()) => {
                if self.pending_seeks.remove(&partition).is_some() {
                    tracing::info!(group = %self.group, partition, ?offset, "refused seek to the stored offset passed on a later try");
                }
                let believed = self.partitions.entry(partition).or_default();
                believed.sought = true;
            }
            Err(error) => {
                if self.pending_seeks.insert(partition, offset).is_none() {
                    tracing::warn!(%error, group = %self.group, partition, ?offset, "cannot seek to the stored offset yet; trying again on the next turn");
                }
            }
        }
    }
}
