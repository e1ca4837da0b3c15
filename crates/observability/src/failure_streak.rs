//! [`FailureStreak`]: the failures of a repeated write since the last one
//! that passed, for a health endpoint to show.
//!
//! A health check asks a store whether it answers, a read; a full disk or a
//! PostgreSQL failed over to a read-only server refuses every write while
//! that read still passes. So the code that writes reports how each write
//! ended, and `/health` shows the writes that failed since the last one that
//! passed (for at most [`FAILURE_REPORT_MS`] after the last failure: with no
//! write since, nothing says whether they would fail now).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// How long after the last failure a streak is still reported when nothing
/// passed since, in ms.
pub const FAILURE_REPORT_MS: u64 = 60_000;

/// Failures since the last write that passed, as `/health` shows them:
/// `{since, failures, error}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failures {
    /// When the first of them failed.
    pub since: DateTime<Utc>,
    /// How many failed.
    pub failures: u64,
    /// The last one's error.
    pub error: String,
}

/// The failing run, and when its last failure was.
#[derive(Debug)]
struct Run {
    report: Failures,
    last_at: Instant,
}

/// How one kind of write has been ending; shared by the tasks that write.
#[derive(Debug, Default)]
pub struct FailureStreak {
    /// True while `run` holds a failure: a passing write looks at it alone,
    /// and takes the lock only to end a run.
    any: AtomicBool,
    run: Mutex<Option<Run>>,
}

impl FailureStreak {
    /// A write passed: the failures before it are over. Answers the run it
    /// ended, if any, for the caller's recovery line.
    pub fn passed(&self) -> Option<Failures> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let mut run = self.lock();
        let ended = run.take().map(|run| run.report);
        self.any.store(false, Ordering::Release);
        ended
    }

    /// A write failed: `error` says how.
    pub fn failed(&self, error: &dyn std::fmt::Display) {
        let mut run = self.lock();
        let error = error.to_string();
        let now = Instant::now();
        match run.as_mut() {
            Some(run) => {
                run.report.failures += 1;
                run.report.error = error;
                run.last_at = now;
            }
            None => {
                *run = Some(Run {
                    report: Failures {
                        since: Utc::now(),
                        failures: 1,
                        error,
                    },
                    last_at: now,
                });
            }
        }
        self.any.store(true, Ordering::Release);
    }

    /// The failures since the last write that passed; `None` when none
    /// failed, or the last failed more than [`FAILURE_REPORT_MS`] ago.
    pub fn failures(&self) -> Option<Failures> {
        let run = self.lock();
        let run = run.as_ref()?;
        let fresh = run.last_at.elapsed() <= Duration::from_millis(FAILURE_REPORT_MS);
        fresh.then(|| run.report.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Option<Run>> {
        self.run.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_until_a_write_passes() {
        let streak = FailureStreak::default();
        assert_eq!(streak.failures(), None);
        assert_eq!(streak.passed(), None, "no run to end");
        streak.failed(&"database or disk is full");
        streak.failed(&"database or disk is full, again");
        let failures = streak.failures().expect("failing");
        assert_eq!(failures.failures, 2);
        assert_eq!(failures.error, "database or disk is full, again");
        assert_eq!(streak.passed(), Some(failures), "the run ended");
        assert_eq!(streak.failures(), None);
        streak.failed(&"read-only transaction");
        assert_eq!(streak.failures().map(|failures| failures.failures), Some(1));
    }

    #[test]
    fn a_failure_older_than_the_report_bound_is_no_longer_reported() {
        let streak = FailureStreak::default();
        streak.failed(&"database or disk is full");
        if let Some(run) = streak.lock().as_mut() {
            run.last_at = Instant::now()
                .checked_sub(Duration::from_millis(FAILURE_REPORT_MS + 1))
                .unwrap_or_else(Instant::now);
        }
        assert_eq!(streak.failures(), None);
    }
}
