//! What a consumer group has not committed past, partition by partition,
//! read through a client in that group that never subscribes: it reads the
//! group's committed offsets whatever state the group's members are in.

use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use crate::client_log::KafkaConsumer;
use crate::BusError;

/// One partition of a topic, against a group's committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PartitionBacklog {
    pub(crate) partition: i32,
    /// The partition's low watermark: its first offset still kept.
    pub(crate) low: i64,
    /// The partition's high watermark: the offset its next message takes.
    pub(crate) high: i64,
    /// The group's next offset (its commit, else `low`); `None` when the
    /// group's committed offsets could not be read.
    pub(crate) next: Option<i64>,
}

impl PartitionBacklog {
    /// Where the group starts reading: its commit, never below `low`; `low`
    /// when unknown.
    pub(crate) fn start(&self) -> i64 {
        self.next.unwrap_or(self.low).max(self.low)
    }

    /// Messages the group has not committed past; every kept message when
    /// its commits could not be read (unknown counts as waiting).
    pub(crate) fn waiting(&self) -> i64 {
        (self.high - self.start()).max(0)
    }
}

/// Every partition of a topic, and whether the group's commits were read.
pub(crate) struct Backlog {
    pub(crate) partitions: Vec<PartitionBacklog>,
    /// Why the group's committed offsets could not be read (each
    /// partition's `next` is then `None`); `None` when they were.
    pub(crate) commits_unread: Option<KafkaError>,
}

/// The backlog of `consumer`'s group on `topic`: its partitions (metadata),
/// their watermarks, and the group's committed offsets; `timeout` bounds
/// each request. An error when the topic's partitions or watermarks cannot
/// be read (the broker is away, or the topic has no partitions).
pub(crate) fn read(
    consumer: &KafkaConsumer,
    topic: &str,
    timeout: Duration,
) -> Result<Backlog, BusError> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let ids: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|found| found.name() == topic)
        .flat_map(|found| found.partitions().iter().map(|partition| partition.id()))
        .collect();
    if ids.is_empty() {
        return Err(BusError::Invalid(format!(
            "the topic {topic} has no partitions"
        )));
    }
    let mut wanted = TopicPartitionList::with_capacity(ids.len());
    for partition in &ids {
        wanted.add_partition(topic, *partition);
    }
    let (committed, commits_unread) = match consumer.committed_offsets(wanted, timeout) {
        Ok(committed) => (Some(committed), None),
        Err(error) => (None, Some(error)),
    };
    let mut partitions = Vec::with_capacity(ids.len());
    for partition in ids {
        let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
        let next = committed.as_ref().map(|committed| {
            match committed
                .find_partition(topic, partition)
                .map(|element| element.offset())
            {
                Some(Offset::Offset(offset)) => offset,
                _ => low,
            }
        });
        partitions.push(PartitionBacklog {
            partition,
            low,
            high,
            next,
        });
    }
    Ok(Backlog {
        partitions,
        commits_unread,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_group_starts_at_its_commit_never_below_the_kept_messages() {
        let read = |next| PartitionBacklog {
            partition: 0,
            low: 10,
            high: 50,
            next,
        };
        assert_eq!(read(Some(30)).waiting(), 20);
        assert_eq!(read(Some(3)).start(), 10, "a commit retention passed");
        assert_eq!(read(Some(3)).waiting(), 40);
        assert_eq!(read(Some(50)).waiting(), 0);
        assert_eq!(read(None).waiting(), 40, "unknown counts as waiting");
    }
}
