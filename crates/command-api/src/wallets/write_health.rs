//! Whether the event store takes writes, as the last commands found.
//!
//! `/health` asks the event store for its head, a read: a full disk, or a
//! PostgreSQL failed over to a read-only server, refuses every write while
//! that read still passes. So the commands report here how their writes
//! ended, and `/health` shows the writes that failed since the last one that
//! passed (for at most [`WRITE_FAILURE_REPORT_MS`] after the last failure:
//! with no write since, nothing says whether they would pass now).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// How long after the last failed write `/health` still reports the writes
/// as failing when no write has passed since, in ms.
pub const WRITE_FAILURE_REPORT_MS: u64 = 60_000;

/// Writes that failed since the last one that passed, as `/health` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteFailures {
    /// When the first of them failed.
    pub since: DateTime<Utc>,
    /// How many failed.
    pub failures: u64,
    /// The last one's error.
    pub error: String,
}

/// The failing writes, and when the last failed.
struct Failing {
    report: WriteFailures,
    last_at: Instant,
}

/// How the event store's writes have been ending; shared by the commands.
#[derive(Default)]
pub struct WriteHealth {
    /// True while `failing` holds a failure: a passing write looks at it
    /// alone, and takes the lock only to clear one.
    any: AtomicBool,
    failing: Mutex<Option<Failing>>,
}

impl WriteHealth {
    /// A write reached the store: the failures before it are over.
    pub fn passed(&self) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut failing = self.lock();
        if let Some(over) = failing.take() {
            tracing::info!(
                failures = over.report.failures,
                since = %over.report.since,
                "event store writes pass again"
            );
        }
        self.any.store(false, Ordering::Release);
    }

    /// A write failed in the store (not refused by the rules): `error` says how.
    pub fn failed(&self, error: &dyn std::fmt::Display) {
        let mut failing = self.lock();
        let error = error.to_string();
        match failing.as_mut() {
            Some(failing) => {
                failing.report.failures += 1;
                failing.report.error = error;
                failing.last_at = Instant::now();
            }
            None => {
                *failing = Some(Failing {
                    report: WriteFailures {
                        since: Utc::now(),
                        failures: 1,
                        error,
                    },
                    last_at: Instant::now(),
                });
            }
        }
        self.any.store(true, Ordering::Release);
    }

    /// The writes failing since the last that passed; `None` when none
    /// failed, or the last failed more than [`WRITE_FAILURE_REPORT_MS`] ago.
    pub fn failures(&self) -> Option<WriteFailures> {
        let failing = self.lock();
        let failing = failing.as_ref()?;
        let fresh = failing.last_at.elapsed() <= Duration::from_millis(WRITE_FAILURE_REPORT_MS);
        fresh.then(|| failing.report.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Failing>> {
        self.failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_until_a_write_passes() {
        let health = WriteHealth::default();
        assert_eq!(health.failures(), None);
        health.passed();
        health.failed(&"database or disk is full");
        health.failed(&"database or disk is full, again");
        let failures = health.failures().expect("failing");
        assert_eq!(failures.failures, 2);
        assert_eq!(failures.error, "database or disk is full, again");
        health.passed();
        assert_eq!(health.failures(), None);
        health.failed(&"read-only transaction");
        assert_eq!(health.failures().map(|failures| failures.failures), Some(1));
    }

    #[test]
    fn a_failure_older_than_the_report_bound_is_no_longer_reported() {
        let health = WriteHealth::default();
        health.failed(&"database or disk is full");
        if let Some(failing) = health.lock().as_mut() {
            failing.last_at = Instant::now()
                .checked_sub(Duration::from_millis(WRITE_FAILURE_REPORT_MS + 1))
                .unwrap_or_else(Instant::now);
        }
        assert_eq!(health.failures(), None);
    }
}
