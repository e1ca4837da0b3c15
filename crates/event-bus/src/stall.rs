//! A member that holds partitions with messages waiting and receives none.
//!
//! librdkafka recovers from a broker that was away by itself, except in
//! cases it leaves an assigned partition waiting for good (its committed
//! offset never fetched again: confluentinc/librdkafka#5586, which the loop
//! also catches by its `NOT_COORDINATOR` error). Whatever the cause, the
//! symptom is the same and is what this watch looks for: the lag refresh
//! keeps seeing messages past the member's committed offsets while the
//! loop, idle, receives none of them. A new member (a new `assign`) fetches
//! again at once; at worst it hands a batch again, which every handler
//! takes at least once.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a member's partitions may have messages waiting past its
/// committed offsets, seen by every lag refresh, while its loop receives
/// nothing, before a new member takes its place, in ms. Far above a fetch's
/// wait (librdkafka's `fetch.wait.max.ms`, 500 ms) and a few lag refreshes
/// (5 s each), so a message produced just before a refresh is fetched long
/// before this passes.
pub const MEMBER_STALL_MAX_MS: u64 = 60_000;

/// Since when the lag refreshes have seen messages waiting, shared by the
/// refresh task (which writes it) and the loop (which reads it).
#[derive(Debug, Default)]
pub(crate) struct StallWatch {
    lagging_since: Mutex<Option<Instant>>,
}

impl StallWatch {
    /// A lag refresh at `at` read `waiting` messages past the committed
    /// offsets of the member's partitions.
    pub(crate) fn lag_read(&self, waiting: i64, at: Instant) {
        let mut lagging_since = self.lagging_since();
        if waiting > 0 {
            lagging_since.get_or_insert(at);
        } else {
            *lagging_since = None;
        }
    }

    /// How long messages have waited unreceived, once that passed
    /// [`MEMBER_STALL_MAX_MS`]: since the first refresh that saw them or since
    /// `busy_until`, whichever is later. `busy_until` is when the loop last
    /// finished a batch (or began): messages waiting while it was handling
    /// one are not the fetcher's fault, and ask for the loop to be idle now.
    pub(crate) fn stalled(&self, busy_until: Instant, now: Instant) -> Option<Duration> {
        let lagging_since = (*self.lagging_since())?;
        let waited = now.saturating_duration_since(lagging_since.max(busy_until));
        (waited >= Duration::from_millis(MEMBER_STALL_MAX_MS)).then_some(waited)
    }

    fn lagging_since(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // An `Option<Instant>` is whole whatever panicked while it was held.
        self.lagging_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_millis(MEMBER_STALL_MAX_MS);

    #[test]
    fn messages_waiting_unreceived_past_the_bound_are_a_stall() {
        let watch = StallWatch::default();
        let idle = Instant::now();
        let seen = idle + Duration::from_secs(5);
        watch.lag_read(3, seen);
        watch.lag_read(3, seen + Duration::from_secs(5));
        assert_eq!(watch.stalled(idle, seen + STALL / 2), None);
        assert_eq!(watch.stalled(idle, seen + STALL), Some(STALL));
    }

    #[test]
    fn a_refresh_that_sees_nothing_waiting_ends_the_count() {
        let watch = StallWatch::default();
        let idle = Instant::now();
        watch.lag_read(3, idle);
        watch.lag_read(0, idle + STALL / 2);
        assert_eq!(watch.stalled(idle, idle + STALL * 2), None);
        let again = idle + STALL;
        watch.lag_read(1, again);
        assert_eq!(watch.stalled(idle, again + STALL / 2), None);
        assert!(watch.stalled(idle, again + STALL).is_some());
    }

    #[test]
    fn the_count_starts_again_when_the_loop_finishes_a_batch() {
        let watch = StallWatch::default();
        let seen = Instant::now();
        watch.lag_read(3, seen);
        let handled = seen + STALL;
        assert_eq!(watch.stalled(handled, handled + STALL / 2), None);
        assert_eq!(watch.stalled(handled, handled + STALL), Some(STALL));
    }
}
