//! A batch whose write went through while the write that records it was
//! refused.
//!
//! Two sinks write a batch to one system and then record it in PostgreSQL:
//! the Kafka publisher publishes, then stores its checkpoint; the search
//! index indexes, then stores its consumer offsets. When PostgreSQL refuses
//! the second write (away, read-only during a failover) the batch is handed
//! again, and writing it to the first system again would be harmless but
//! costly: a relay retrying for a minute republished the same batch
//! thousands of times. [`AwaitingRecord`] remembers the last such batch so
//! that, handed again, only its record is written.

use std::sync::{Mutex, MutexGuard, PoisonError};

use event_store::{RecordedEvent, StoredEvent};

/// Tells one batch from another: its first and last positions in the log
/// and its number of events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchKey {
    first: u64,
    last: u64,
    events: usize,
}

impl BatchKey {
    /// The key of a decoded batch (what the Kafka consumer loop hands).
    pub fn of_recorded(batch: &[RecordedEvent]) -> Self {
        Self::of_positions(batch.iter().map(|recorded| recorded.position))
    }

    /// The key of a batch as stored (what the in-process relay hands).
    pub fn of_stored(batch: &[StoredEvent]) -> Self {
        Self::of_positions(batch.iter().map(|stored| stored.position))
    }

    fn of_positions(positions: impl ExactSizeIterator<Item = u64> + Clone) -> Self {
        let events = positions.len();
        let first = positions.clone().next().unwrap_or(0);
        Self {
            first,
            last: positions.last().unwrap_or(0),
            events,
        }
    }
}

/// The last batch written whose record was refused, with what its write
/// left (`W`: the Kafka offsets it was published at, or nothing).
#[derive(Debug)]
pub struct AwaitingRecord<W> {
    held: Mutex<Option<(BatchKey, W)>>,
}

impl<W> Default for AwaitingRecord<W> {
    fn default() -> Self {
        Self {
            held: Mutex::new(None),
        }
    }
}

impl<W> AwaitingRecord<W> {
    /// What the write of batch `key` left, if `key` is the batch held; any
    /// batch held is forgotten either way (a batch that is not handed again
    /// next was taken over by another delivery).
    pub fn take(&self, key: BatchKey) -> Option<W> {
        self.lock()
            .take()
            .and_then(|(held, written)| (held == key).then_some(written))
    }

    /// Remembers batch `key`, written (leaving `written`) while its record
    /// was refused.
    pub fn hold(&self, key: BatchKey, written: W) {
        *self.lock() = Some((key, written));
    }

    fn lock(&self) -> MutexGuard<'_, Option<(BatchKey, W)>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(positions: &[u64]) -> Vec<StoredEvent> {
        positions
            .iter()
            .map(|&position| StoredEvent {
                position,
                stream_version: 1,
                payload: String::new(),
            })
            .collect()
    }

    #[test]
    fn a_held_batch_is_given_back_once_to_the_same_batch() {
        let awaiting = AwaitingRecord::default();
        let batch = BatchKey::of_stored(&stored(&[4, 5, 9]));
        awaiting.hold(batch, "offsets");
        assert_eq!(awaiting.take(batch), Some("offsets"));
        assert_eq!(awaiting.take(batch), None);
    }

    #[test]
    fn another_batch_gets_nothing_and_the_held_one_is_forgotten() {
        let awaiting = AwaitingRecord::default();
        let held = BatchKey::of_stored(&stored(&[4, 5, 9]));
        awaiting.hold(held, ());
        // The same ends, one event fewer: a smaller batch handed after a failure.
        assert_eq!(awaiting.take(BatchKey::of_stored(&stored(&[4, 9]))), None);
        assert_eq!(awaiting.take(held), None);
    }

    #[test]
    fn keys_tell_batches_apart_by_their_ends_and_length() {
        let key = |positions: &[u64]| BatchKey::of_stored(&stored(positions));
        assert_eq!(key(&[1, 2, 3]), key(&[1, 2, 3]));
        assert_ne!(key(&[1, 2, 3]), key(&[1, 2, 4]));
        assert_ne!(key(&[1, 2, 3]), key(&[2, 3]));
        assert_ne!(key(&[1, 3]), key(&[1, 2, 3]));
    }
}
