//! [`LogThrottle`]: which occurrences of something that repeats (a failure
//! retried without end, a warning asked for by every request) are logged,
//! and when its end is.

use std::time::{Duration, Instant};

/// Decides, for one kind of repeated occurrence, whether a log line is
/// written now or held back: the first occurrence of a run is logged at
/// once; the later ones at most once per interval (or never, with
/// [`LogThrottle::first_only`]), each logged line saying how many were held
/// back since the previous one. A run ends with [`LogThrottle::recovered`],
/// which answers once, with the run's length, for the recovery line.
///
/// It only decides; the caller writes the line, at its own level, with its
/// own message. Times are given by the caller (`now`), from a monotonic
/// clock: [`Instant::now`], or `tokio::time::Instant::now().into_std()`
/// where tokio's paused clock must drive it. It holds no lock: share it
/// behind a `Mutex`.
#[derive(Debug, Clone)]
pub struct LogThrottle {
    /// Least time between two lines of one run; `None`: only the first.
    interval: Option<Duration>,
    /// When the last line of the current run was logged; `None` before the
    /// first occurrence of a run.
    logged_at: Option<Instant>,
    /// Occurrences held back since the last line.
    held_back: u64,
    /// Occurrences since the run began, logged or not.
    in_a_row: u64,
}

/// What to write when [`LogThrottle::occurred`] says to log now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogNow {
    /// Occurrences held back since the previous line of the run (0 for its
    /// first line); the one being logged is not among them.
    pub held_back: u64,
    /// Occurrences since the run began, the one being logged included.
    pub in_a_row: u64,
}

impl LogThrottle {
    /// Logs the first occurrence of a run, then at most one per `interval`.
    pub fn every(interval: Duration) -> Self {
        Self::with_interval(Some(interval))
    }

    /// Logs the first occurrence of a run and holds back every later one
    /// until [`Self::recovered`].
    pub fn first_only() -> Self {
        Self::with_interval(None)
    }

    fn with_interval(interval: Option<Duration>) -> Self {
        Self {
            interval,
            logged_at: None,
            held_back: 0,
            in_a_row: 0,
        }
    }

    /// Counts an occurrence at `now`: `Some` to log it now (with what was
    /// held back before it), `None` to hold it back. An occurrence is logged
    /// when it is the first of its run, or when the last line is at least
    /// the interval old at `now` (a `now` earlier than the last line counts
    /// as no time passed).
    pub fn occurred(&mut self, now: Instant) -> Option<LogNow> {
        self.in_a_row = self.in_a_row.saturating_add(1);
        let due = match (self.logged_at, self.interval) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(at), Some(interval)) => now.saturating_duration_since(at) >= interval,
        };
        if !due {
            self.held_back = self.held_back.saturating_add(1);
            return None;
        }
        let line = LogNow {
            held_back: self.held_back,
            in_a_row: self.in_a_row,
        };
        self.logged_at = Some(now);
        self.held_back = 0;
        Some(line)
    }

    /// Ends the run: `Some(occurrences of the run)` to log the recovery,
    /// once; `None` when nothing occurred since the last recovery. The next
    /// occurrence starts a new run, logged at once.
    pub fn recovered(&mut self) -> Option<u64> {
        let in_a_row = self.in_a_row;
        *self = Self::with_interval(self.interval);
        (in_a_row > 0).then_some(in_a_row)
    }

    /// Occurrences since the run began (0 when none, or since
    /// [`Self::recovered`]).
    pub fn in_a_row(&self) -> u64 {
        self.in_a_row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(60_000);

    #[test]
    fn the_first_occurrence_is_logged_at_once() {
        let mut throttle = LogThrottle::every(INTERVAL);
        assert_eq!(throttle.in_a_row(), 0);
        assert_eq!(
            throttle.occurred(Instant::now()),
            Some(LogNow {
                held_back: 0,
                in_a_row: 1
            })
        );
    }

    #[test]
    fn repeats_within_the_interval_are_held_back_and_the_next_line_counts_them() {
        let mut throttle = LogThrottle::every(INTERVAL);
        let start = Instant::now();
        assert!(throttle.occurred(start).is_some());
        assert_eq!(throttle.occurred(start + INTERVAL / 2), None);
        assert_eq!(
            throttle.occurred(start + INTERVAL - Duration::from_millis(1)),
            None
        );
        assert_eq!(throttle.in_a_row(), 3);
        assert_eq!(
            throttle.occurred(start + INTERVAL),
            Some(LogNow {
                held_back: 2,
                in_a_row: 4
            }),
            "the interval is measured from the last line"
        );
        assert_eq!(throttle.occurred(start + INTERVAL), None, "a new interval");
        assert_eq!(
            throttle.occurred(start + INTERVAL * 2),
            Some(LogNow {
                held_back: 1,
                in_a_row: 6
            })
        );
    }

    #[test]
    fn a_clock_read_before_the_last_line_holds_back() {
        let mut throttle = LogThrottle::every(INTERVAL);
        let start = Instant::now();
        assert!(throttle.occurred(start + INTERVAL).is_some());
        assert_eq!(throttle.occurred(start), None);
    }

    #[test]
    fn first_only_holds_back_every_repeat_until_the_recovery() {
        let mut throttle = LogThrottle::first_only();
        let start = Instant::now();
        assert!(throttle.occurred(start).is_some());
        assert_eq!(throttle.occurred(start + INTERVAL * 1_000), None);
        assert_eq!(throttle.recovered(), Some(2));
        assert!(throttle.occurred(start).is_some(), "a new run");
    }

    #[test]
    fn the_recovery_is_logged_once_and_a_new_run_is_logged_at_once() {
        let mut throttle = LogThrottle::every(INTERVAL);
        let start = Instant::now();
        assert_eq!(throttle.recovered(), None, "nothing to recover from");
        assert!(throttle.occurred(start).is_some());
        assert_eq!(throttle.occurred(start), None);
        assert_eq!(throttle.occurred(start), None);
        assert_eq!(throttle.recovered(), Some(3), "the run's occurrences");
        assert_eq!(throttle.recovered(), None, "logged once");
        assert_eq!(throttle.in_a_row(), 0);
        assert_eq!(
            throttle.occurred(start + Duration::from_millis(1)),
            Some(LogNow {
                held_back: 0,
                in_a_row: 1
            }),
            "within the old interval, but a new run"
        );
    }
}
