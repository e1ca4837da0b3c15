//! Which fetched messages continue their partition's stored offset without a
//! gap: the pure half of [`super::StoredPositions::sort`].
//!
//! The topic is written by an idempotent producer without transactions and
//! is never compacted, so a partition's offsets are contiguous; the only
//! messages a partition can miss are those retention deleted, below its low
//! watermark. Any other gap between the stored offset and what librdkafka
//! hands is the client's, not the log's: a seek it has not applied yet (its
//! maintainer's advice for that race is to check each received offset and
//! seek again, confluentinc/librdkafka#2256), or a partition assigned again
//! from Kafka's commit while the stored offset is below it. Taking such a
//! message would store an offset past messages the sink never applied, and
//! they would be lost to it for good.

use std::collections::BTreeMap;

/// Where one partition's messages stop continuing its stored offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Gap {
    /// The partition's stored next offset, where it is sought back to.
    pub(super) stored: i64,
    /// The offset the next message should have had: the stored one, or one
    /// past the partition's previous message in the batch.
    pub(super) expected: i64,
    /// The offset of the message that came instead (above `expected`).
    pub(super) found: i64,
}

/// A batch's messages sorted against the stored offsets.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Plan {
    /// For each message, in fetch order: whether it is handed to the sink.
    pub(super) take: Vec<bool>,
    /// Partitions with a gap retention does not explain: none of their
    /// messages is taken, and they are sought back to the stored offset.
    pub(super) gaps: BTreeMap<i32, Gap>,
    /// Gaps retention explains (every missing offset is below the
    /// partition's low watermark): taken, since nothing will fill them.
    pub(super) gone: BTreeMap<i32, Gap>,
    /// Messages below their partition's stored offset (applied already),
    /// counted by partition.
    pub(super) applied: BTreeMap<i32, usize>,
}

/// Sorts `messages` (partition and offset, in fetch order) against `stored`
/// (a partition's stored next offset; `None` when the sink keeps no row for
/// it, and Kafka's position is taken as it comes) and `low` (the low
/// watermarks known: a partition's first offset retention kept).
pub(super) fn plan(
    messages: &[(i32, i64)],
    stored: impl Fn(i32) -> Option<i64>,
    low: &BTreeMap<i32, i64>,
) -> Plan {
    let mut plan = Plan {
        take: Vec::with_capacity(messages.len()),
        ..Plan::default()
    };
    let mut expected: BTreeMap<i32, Option<i64>> = BTreeMap::new();
    for &(partition, offset) in messages {
        let expect = expected
            .entry(partition)
            .or_insert_with(|| stored(partition));
        let taken = match *expect {
            None => true,
            Some(next) if offset < next => {
                *plan.applied.entry(partition).or_default() += 1;
                false
            }
            Some(next) => {
                let gap = (offset > next).then(|| Gap {
                    stored: stored(partition).unwrap_or(next),
                    expected: next,
                    found: offset,
                });
                match gap {
                    None => true,
                    Some(gap) if low.get(&partition).is_some_and(|low| offset <= *low) => {
                        plan.gone.entry(partition).or_insert(gap);
                        true
                    }
                    Some(gap) => {
                        plan.gaps.entry(partition).or_insert(gap);
                        false
                    }
                }
            }
        };
        if taken && expect.is_some() {
            *expect = Some(offset + 1);
        }
        plan.take.push(taken);
    }
    for (take, (partition, _)) in plan.take.iter_mut().zip(messages) {
        if plan.gaps.contains_key(partition) {
            *take = false;
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored_at(next: i64) -> impl Fn(i32) -> Option<i64> {
        move |partition| (partition == 1).then_some(next)
    }

    fn no_watermarks() -> BTreeMap<i32, i64> {
        BTreeMap::new()
    }

    #[test]
    fn messages_that_continue_the_stored_offset_are_taken() {
        let plan = plan(
            &[(1, 285), (1, 286), (1, 287)],
            stored_at(285),
            &no_watermarks(),
        );
        assert_eq!(plan.take, [true, true, true]);
        assert!(plan.gaps.is_empty() && plan.gone.is_empty());
    }

    #[test]
    fn messages_below_the_stored_offset_are_skipped_as_applied() {
        let plan = plan(
            &[(1, 283), (1, 284), (1, 285)],
            stored_at(285),
            &no_watermarks(),
        );
        assert_eq!(plan.take, [false, false, true]);
        assert_eq!(plan.applied, BTreeMap::from([(1, 2)]));
    }

    /// The fault suite's lost event: the stored offset went back to 285 and
    /// what came (right after a seek there, or from Kafka's commit) started
    /// at 287. Taking it stored 288 and lost 285 and 286 to the sink.
    #[test]
    fn a_first_message_above_the_stored_offset_is_not_taken_and_its_partition_is_sought_back() {
        let plan = plan(
            &[(1, 287), (0, 40), (1, 288)],
            |partition| Some(if partition == 1 { 285 } else { 40 }),
            &no_watermarks(),
        );
        assert_eq!(plan.take, [false, true, false]);
        let gap = Gap {
            stored: 285,
            expected: 285,
            found: 287,
        };
        assert_eq!(plan.gaps, BTreeMap::from([(1, gap)]));
    }

    #[test]
    fn a_gap_inside_a_batch_drops_the_whole_partition_back_to_its_stored_offset() {
        let plan = plan(
            &[(1, 285), (1, 286), (1, 288)],
            stored_at(285),
            &no_watermarks(),
        );
        assert_eq!(plan.take, [false, false, false]);
        let gap = Gap {
            stored: 285,
            expected: 287,
            found: 288,
        };
        assert_eq!(plan.gaps, BTreeMap::from([(1, gap)]));
    }

    #[test]
    fn a_gap_retention_made_is_taken() {
        let low = BTreeMap::from([(1, 300)]);
        let plan = plan(&[(1, 300), (1, 301)], stored_at(285), &low);
        assert_eq!(plan.take, [true, true]);
        assert!(plan.gaps.is_empty());
        assert_eq!(plan.gone.len(), 1);
    }

    #[test]
    fn a_gap_above_the_low_watermark_is_not_explained_by_retention() {
        let low = BTreeMap::from([(1, 290)]);
        let plan = plan(&[(1, 295)], stored_at(285), &low);
        assert_eq!(plan.take, [false]);
        assert_eq!(plan.gaps.len(), 1, "290 to 294 are kept: seek back");
    }

    #[test]
    fn a_partition_without_a_stored_row_takes_what_kafka_hands() {
        let plan = plan(&[(2, 7), (2, 9)], stored_at(285), &no_watermarks());
        assert_eq!(plan.take, [true, true]);
        assert!(plan.gaps.is_empty());
    }
}
