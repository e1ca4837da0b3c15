//! The newest events of the embedded log, kept in memory by its writer.
//!
//! The in-process relays (ledger, read model, search index) each read the
//! log after their own checkpoint, usually the same few events just
//! committed: served from here, those reads cost a copy of the events
//! instead of a query on the file each. The writer adds each commit's events
//! after the commit returns and before it announces the new head, so the
//! tail is always a prefix of the committed log, never ahead of it.

use std::collections::VecDeque;

use crate::StoredEvent;

/// Bytes of events the tail keeps at most, each event weighing its
/// [`event_bytes`]: 8 MiB, about 16,000 events of the usual 0.5 KiB or 2,700
/// of the longest (a 500-character description with 255-character keys,
/// about 3 KiB). The relays' batches further behind the head read the file.
/// A bound in events let long events take about 50 MB (tester h91).
pub const LOG_TAIL_BYTES_MAX: usize = 8 * 1024 * 1024;

/// What one kept event weighs: its stored JSON and its record in the queue.
fn event_bytes(event: &StoredEvent) -> usize {
    std::mem::size_of::<StoredEvent>() + event.payload.len()
}

/// The newest committed events, in position order.
#[derive(Debug)]
pub(crate) struct LogTail {
    /// Every committed event positioned after this one, up to the newest of
    /// `events`, is in `events`. `None` once a commit's outcome is unknown
    /// (its events may be stored, but are not here) until the next commit.
    covered_after: Option<u64>,
    events: VecDeque<StoredEvent>,
    /// The sum of `events`' [`event_bytes`], at most [`LOG_TAIL_BYTES_MAX`].
    bytes: usize,
}

impl LogTail {
    /// An empty tail of a log whose newest event is at `head`.
    pub fn new(head: u64) -> Self {
        Self {
            covered_after: Some(head),
            events: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Adds the events of one commit: every event it stored, in position
    /// order. The writer is the log's only one, so nothing else was
    /// committed between the previous commit and this one, and each new event
    /// takes the position after the newest stored. When the commit's first
    /// position is not the one after the newest kept, the file changed beside
    /// its writer (it lost its newest events, restored from a copy under a
    /// running server, as the replica tests do): the tail starts again from
    /// this commit, as after an unknown outcome.
    ///
    /// # Panics
    /// When one commit's events are not in strictly increasing positions.
    pub fn committed(&mut self, events: Vec<StoredEvent>) {
        let Some(first) = events.first() else {
            return;
        };
        let newest_kept = self
            .events
            .back()
            .map(|event| event.position)
            .or(self.covered_after);
        if newest_kept.is_some_and(|newest| first.position != newest + 1) {
            tracing::warn!(
                position = first.position,
                newest_kept,
                "the event log changed beside its writer; its in-memory tail starts again"
            );
            self.lost_track();
        }
        if self.covered_after.is_none() {
            self.covered_after = Some(first.position.saturating_sub(1));
        }
        for pair in events.windows(2) {
            assert!(
                pair[1].position > pair[0].position,
                "one commit stored position {} after position {}",
                pair[1].position,
                pair[0].position
            );
        }
        self.bytes += events.iter().map(event_bytes).sum::<usize>();
        self.events.extend(events);
        while self.bytes > LOG_TAIL_BYTES_MAX {
            let evicted = self
                .events
                .pop_front()
                .expect("kept bytes belong to kept events");
            self.bytes -= event_bytes(&evicted);
            self.covered_after = Some(evicted.position);
        }
    }

    /// Forgets what is kept: a commit may have stored events that are not here.
    pub fn lost_track(&mut self) {
        self.events.clear();
        self.bytes = 0;
        self.covered_after = None;
    }

    /// Up to `limit` events after `position`, oldest first, when the tail
    /// covers `position` and holds at least one event after it; `None` when
    /// the file must be read. Nothing kept after `position` is asked of the
    /// file too, so an event stored there beside the writer (a test's, or a
    /// newer build's) is never hidden by the tail.
    pub fn after(&self, position: u64, limit: usize) -> Option<Vec<StoredEvent>> {
        if position < self.covered_after? {
            return None;
        }
        let start = self
            .events
            .partition_point(|event| event.position <= position);
        if start == self.events.len() {
            return None;
        }
        Some(self.events.range(start..).take(limit).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(position: u64) -> StoredEvent {
        StoredEvent {
            position,
            stream_version: 1,
            payload: format!("{{\"position\":{position}}}"),
        }
    }

    fn positions(events: Option<Vec<StoredEvent>>) -> Option<Vec<u64>> {
        events.map(|events| events.iter().map(|event| event.position).collect())
    }

    #[test]
    fn a_new_tail_sends_every_read_to_the_file() {
        let tail = LogTail::new(10);
        assert_eq!(positions(tail.after(10, 5)), None);
        assert_eq!(positions(tail.after(9, 5)), None);
    }

    #[test]
    fn committed_events_are_served_after_any_covered_position_up_to_the_limit() {
        let mut tail = LogTail::new(10);
        tail.committed(vec![event(11), event(12)]);
        tail.committed(vec![event(13)]);
        assert_eq!(positions(tail.after(10, 5)), Some(vec![11, 12, 13]));
        assert_eq!(positions(tail.after(11, 1)), Some(vec![12]));
        assert_eq!(positions(tail.after(2, 5)), None);
        // Nothing kept after 13: the file may hold an event written beside.
        assert_eq!(positions(tail.after(13, 5)), None);
    }

    /// An event whose stored JSON is `payload_bytes` long.
    fn event_of(position: u64, payload_bytes: usize) -> StoredEvent {
        StoredEvent {
            position,
            stream_version: 1,
            payload: "x".repeat(payload_bytes),
        }
    }

    #[test]
    fn the_oldest_events_are_evicted_past_the_bound_and_then_read_from_the_file() {
        let mut tail = LogTail::new(0);
        let weight = event_bytes(&event_of(1, 500));
        let fit = (LOG_TAIL_BYTES_MAX / weight) as u64;
        tail.committed(
            (1..=fit + 3)
                .map(|position| event_of(position, 500))
                .collect(),
        );
        assert_eq!(positions(tail.after(2, 1)), None);
        assert_eq!(positions(tail.after(3, 1)), Some(vec![4]));
        assert_eq!(tail.events.len() as u64, fit);
        assert!(tail.bytes <= LOG_TAIL_BYTES_MAX);
    }

    #[test]
    fn long_events_are_kept_fewer_within_the_same_bytes() {
        let mut tail = LogTail::new(0);
        for position in 1..=20_000 {
            tail.committed(vec![event_of(position, 3_000)]);
            assert!(tail.bytes <= LOG_TAIL_BYTES_MAX, "{} bytes", tail.bytes);
        }
        let kept: usize = tail.events.iter().map(event_bytes).sum();
        assert_eq!(kept, tail.bytes);
        assert!(tail.events.len() < 3_000, "{} events", tail.events.len());
        tail.lost_track();
        assert_eq!(tail.bytes, 0);
    }

    #[test]
    fn after_an_unknown_outcome_the_tail_covers_again_from_the_next_commit() {
        let mut tail = LogTail::new(10);
        tail.committed(vec![event(11)]);
        tail.lost_track();
        assert_eq!(positions(tail.after(11, 5)), None);
        // The unknown commit did store 12 and 13: the next one starts at 14.
        tail.committed(vec![event(14), event(15)]);
        assert_eq!(positions(tail.after(13, 5)), Some(vec![14, 15]));
        assert_eq!(positions(tail.after(12, 5)), None);
    }

    #[test]
    fn a_log_that_lost_its_newest_events_is_covered_again_from_the_next_commit() {
        let mut tail = LogTail::new(10);
        tail.committed(vec![event(11), event(12)]);
        // The file lost 12: the next commit stores a new event at 12.
        tail.committed(vec![event(12), event(13)]);
        assert_eq!(positions(tail.after(11, 5)), Some(vec![12, 13]));
        assert_eq!(positions(tail.after(10, 5)), None);
        // Events the tail never saw (written beside the writer) before 20.
        tail.committed(vec![event(20)]);
        assert_eq!(positions(tail.after(13, 5)), None);
        assert_eq!(positions(tail.after(19, 5)), Some(vec![20]));
    }

    #[test]
    #[should_panic(expected = "one commit stored position 11 after position 12")]
    fn positions_out_of_order_within_a_commit_are_corruption() {
        let mut tail = LogTail::new(10);
        tail.committed(vec![event(12), event(11)]);
    }
}
