//! Start-up against servers that may not be up yet: a binary started
//! before its store (a restart of the whole stack, a store being failed
//! over) waits for it a bounded time instead of exiting at once (h113 F3:
//! outbox-relay exited, and nothing was published until it was started by
//! hand, where the consumers beside it waited).

use std::future::Future;
use std::time::Duration;

/// How long a binary waits at start-up for a store that does not answer,
/// in seconds, before it gives up and exits (its supervisor restarts it).
pub const STARTUP_WAIT_SECONDS_MAX: u64 = 120;
/// Pause between two start-up attempts, in ms.
pub const STARTUP_RETRY_PAUSE_MS: u64 = 1_000;

/// How long to wait and how often to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartupWait {
    /// Time after which a transient failure is returned, in ms.
    pub wait_ms_max: u64,
    /// Pause between attempts, in ms.
    pub pause_ms: u64,
}

impl Default for StartupWait {
    fn default() -> Self {
        Self {
            wait_ms_max: STARTUP_WAIT_SECONDS_MAX * 1_000,
            pause_ms: STARTUP_RETRY_PAUSE_MS,
        }
    }
}

impl StartupWait {
    /// Runs `attempt` until it succeeds, fails permanently (returned at
    /// once), or fails transiently (as `transient` says) after
    /// `wait_ms_max` (that failure is returned). `what` names the store in
    /// the log.
    pub async fn until_ready<T, E, F, Attempt>(
        &self,
        what: &str,
        transient: impl Fn(&E) -> bool,
        mut attempt: F,
    ) -> Result<T, E>
    where
        E: std::fmt::Display,
        F: FnMut() -> Attempt,
        Attempt: Future<Output = Result<T, E>>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.wait_ms_max);
        let mut attempts: u32 = 0;
        loop {
            attempts = attempts.saturating_add(1);
            match attempt().await {
                Err(error) if transient(&error) && tokio::time::Instant::now() < deadline => {
                    tracing::warn!(store = what, %error, attempts, "not answering at start-up; trying again");
                    tokio::time::sleep(Duration::from_millis(self.pause_ms)).await;
                }
                outcome => return outcome,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Failure(&'static str, bool);

    fn transient(failure: &Failure) -> bool {
        failure.1
    }

    const QUICK: StartupWait = StartupWait {
        wait_ms_max: 2_000,
        pause_ms: 1,
    };

    #[tokio::test]
    async fn a_store_that_answers_on_the_third_try_is_waited_for() {
        let tries = AtomicU32::new(0);
        let outcome = QUICK
            .until_ready("test", transient, || async {
                match tries.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(Failure("down", true)),
                    _ => Ok("up"),
                }
            })
            .await;
        assert_eq!(outcome.ok(), Some("up"));
        assert_eq!(tries.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_permanent_failure_is_returned_at_once() {
        let tries = AtomicU32::new(0);
        let outcome: Result<(), _> = QUICK
            .until_ready("test", transient, || async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err(Failure("bad mapping", false))
            })
            .await;
        assert_eq!(outcome.err().map(|failure| failure.0), Some("bad mapping"));
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_store_still_away_at_the_deadline_fails_start_up() {
        let wait = StartupWait {
            wait_ms_max: 50,
            pause_ms: 10,
        };
        let tries = AtomicU32::new(0);
        let outcome: Result<(), _> = wait
            .until_ready("test", transient, || async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err(Failure("down", true))
            })
            .await;
        assert!(outcome.is_err());
        assert!(
            tries.load(Ordering::SeqCst) > 1,
            "tried again before giving up"
        );
    }
}
