//! The consumer offsets a sink stores with its writes, as this member of the
//! group believes them: which fetched messages to hand, which to skip, where
//! to seek back, and the [`ConsumerOffsets`] each handed batch moves.
//!
//! The sink's storage is the authority, Kafka's committed offsets are not:
//! a message below a partition's stored offset was applied and is skipped; a
//! partition whose messages do not continue its stored offset without a gap
//! is sought back to it, as many times as it takes, unless retention deleted
//! the missing messages ([`contiguity`]); and a batch the sink refuses
//! because the stored offsets moved (the storage went back in time, or
//! another member moved them) makes this member read them again and seek
//! every partition of the batch there.
//!
//! librdkafka refuses a seek on a partition it is not fetching at that moment
//! ("Local: Erroneous state", as while a partition is being assigned again
//! after a broker came back). The messages of a partition to seek back are
//! dropped from the batch either way, so a refused seek is kept pending and
//! tried again on the loop's next turn ([`StoredPositions::retry_seeks`]),
//! even when no further message comes on that partition; without that, the
//! dropped messages waited for the partition's next message (or rebalance),
//! and after the last writes of a run they never came.

mod contiguity;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use event_sink::{ConsumerOffsets, OffsetMove, StoredOffsets};
use prometheus::IntCounter;
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
    /// Set when the partition ends below `next` (the topic was deleted and
    /// created again, or Kafka lost its tail): its first kept offset, from
    /// which every message is taken (the sinks skip what they hold by event
    /// id) until the sink stores an offset in it again; `next` stays what
    /// the sink's row holds, which the first move expects.
    restarted_from: Option<i64>,
    /// Seeks back to `next` for a gap since the sink last stored an offset
    /// here (only the first, second, fourth, … are logged).
    gap_seeks: u32,
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
    /// Bound on each seek and watermark request.
    request_timeout: Duration,
    counters: GapCounters,
}

/// What the gaps a member met did, counted for its handler
/// ([`crate::ConsumerMetrics::stored_offset_seeks`],
/// [`crate::ConsumerMetrics::missed_to_retention`] and
/// [`crate::ConsumerMetrics::partition_restarts`]).
pub(crate) struct GapCounters {
    /// Seeks back to a stored offset for a gap.
    pub(crate) seeks: IntCounter,
    /// Messages retention deleted before they were taken.
    pub(crate) missed: IntCounter,
    /// Partitions found ending below their stored offset.
    pub(crate) restarts: IntCounter,
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
    /// `request_timeout` bounds each seek and watermark request.
    pub(crate) fn new(
        group: &str,
        topic: &str,
        stored: StoredOffsets,
        request_timeout: Duration,
        counters: GapCounters,
    ) -> Self {
        let mut positions = Self {
            group: group.to_owned(),
            topic: topic.to_owned(),
            partitions: HashMap::new(),
            pending_seeks: BTreeMap::new(),
            request_timeout,
            counters,
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
                    restarted_from: None,
                    gap_seeks: 0,
                };
                (partition, believed)
            })
            .collect();
    }

    /// Skips the messages below their partition's stored offset, and seeks
    /// back to it a partition whose messages do not continue it without a
    /// gap (dropping them all from the batch) unless retention deleted what
    /// is missing (see [`contiguity`]).
    pub(crate) async fn sort(
        &mut self,
        consumer: &Arc<KafkaConsumer>,
        messages: Vec<OwnedMessage>,
    ) -> Sorted {
        let offsets: Vec<(i32, i64)> = messages
            .iter()
            .map(|message| (message.partition(), message.offset()))
            .collect();
        let mut plan = contiguity::plan(
            &offsets,
            |partition| self.taken_from(partition),
            &BTreeMap::new(),
        );
        if !plan.applied.is_empty() && self.restarted_below_stored(consumer, &plan).await {
            plan = contiguity::plan(
                &offsets,
                |partition| self.taken_from(partition),
                &BTreeMap::new(),
            );
        }
        if !plan.gaps.is_empty() {
            let low = self.watermarks(consumer, plan.gaps.keys()).await;
            let low = low
                .into_iter()
                .map(|(partition, (first_kept, _))| (partition, first_kept))
                .collect();
            plan = contiguity::plan(&offsets, |partition| self.taken_from(partition), &low);
        }
        if !plan.applied.is_empty() {
            tracing::debug!(group = %self.group, skipped = ?plan.applied, "skipping messages below the stored offset: applied already");
        }
        for (partition, gap) in &plan.gone {
            self.counters
                .missed
                .inc_by(u64::try_from(gap.found - gap.expected).unwrap_or_default());
            tracing::error!(
                group = %self.group,
                partition,
                stored = gap.stored,
                expected = gap.expected,
                first_kept = gap.found,
                "retention deleted messages this group never applied; taking the partition from its first kept message"
            );
        }
        for (&partition, gap) in &plan.gaps {
            self.counters.seeks.inc();
            let believed = self.partitions.entry(partition).or_default();
            believed.gap_seeks = believed.gap_seeks.saturating_add(1);
            if believed.gap_seeks.is_power_of_two() {
                tracing::warn!(
                    group = %self.group,
                    partition,
                    stored = gap.stored,
                    expected = gap.expected,
                    fetched = gap.found,
                    seeks = believed.gap_seeks,
                    "messages do not continue the stored offset; seeking back to it"
                );
            }
            self.seek(consumer, partition, Offset::Offset(gap.stored))
                .await;
        }
        let sought: BTreeSet<i32> = plan.gaps.keys().copied().collect();
        let to_handle = messages
            .into_iter()
            .zip(plan.take)
            .filter_map(|(message, take)| take.then_some(message))
            .collect();
        Sorted { to_handle, sought }
    }

    /// The watermarks (first offset kept, offset of the next message) of
    /// `partitions`; empty when they cannot be read now (a gap is then
    /// sought back, a skip stays a skip).
    async fn watermarks(
        &self,
        consumer: &Arc<KafkaConsumer>,
        partitions: impl Iterator<Item = &i32>,
    ) -> BTreeMap<i32, (i64, i64)> {
        let topic = self.topic.clone();
        let timeout = self.request_timeout;
        let partitions: Vec<i32> = partitions.copied().collect();
        let read = blocking(consumer, move |consumer| {
            let mut marks = BTreeMap::new();
            for partition in partitions {
                marks.insert(
                    partition,
                    consumer.fetch_watermarks(&topic, partition, timeout)?,
                );
            }
            Ok(marks)
        })
        .await;
        read.unwrap_or_else(|error| {
            tracing::warn!(%error, group = %self.group, "cannot read the watermarks of partitions to check");
            BTreeMap::new()
        })
    }

    /// The offset from which `partition`'s messages are taken: where it
    /// restarted, or its stored offset.
    fn taken_from(&self, partition: i32) -> Option<i64> {
        let believed = self.partition(partition);
        believed.restarted_from.or(believed.next)
    }

    /// Whether a partition whose messages were skipped as applied ends below
    /// its stored offset, which no partition of a living topic does: the
    /// topic was deleted and created again, or Kafka lost the partition's
    /// tail (h113 F2: every new message was skipped, and reads said the
    /// projections were caught up). Such a partition is taken again from
    /// its first kept offset ([`Partition::restarted_from`]).
    async fn restarted_below_stored(
        &mut self,
        consumer: &Arc<KafkaConsumer>,
        plan: &contiguity::Plan,
    ) -> bool {
        // A partition already taken again needs no second look.
        let unchecked: Vec<i32> = plan
            .applied
            .keys()
            .copied()
            .filter(|partition| self.partition(*partition).restarted_from.is_none())
            .collect();
        if unchecked.is_empty() {
            return false;
        }
        let marks = self.watermarks(consumer, unchecked.iter()).await;
        let mut restarted = false;
        for (partition, (first_kept, end)) in marks {
            let believed = self.partitions.entry(partition).or_default();
            let Some(stored) = believed.next else {
                continue;
            };
            if end >= stored {
                continue;
            }
            self.counters.restarts.inc();
            tracing::error!(
                group = %self.group,
                partition,
                stored,
                end,
                first_kept,
                "the partition ends below the stored offset (the topic was created again, or Kafka lost its tail); taking it again from its first kept message"
            );
            believed.restarted_from = Some(first_kept);
            restarted = true;
        }
        restarted
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
                    restarted_from: None,
                    gap_seeks: 0,
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
        let timeout = self.request_timeout;
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
            }
            Err(error) => {
                if self.pending_seeks.insert(partition, offset).is_none() {
                    tracing::warn!(%error, group = %self.group, partition, ?offset, "cannot seek to the stored offset yet; trying again on the next turn");
                }
            }
        }
    }
}
