//! Stopping on a signal: SIGTERM (what orchestrators send) and SIGINT
//! (Ctrl-C, the embedded default runs in a terminal) both stop gracefully.
//! actix-server's own handling makes SIGINT a forced stop, cutting requests
//! in flight, some after their write committed, so each binary disables it,
//! installs [`StopSignals`] first thing (a signal during the start is kept,
//! not left to the default action, which kills) and hands them its
//! server's stop once the server runs ([`StopSignals::stop_with`]).
//!
//! Before it serves, a binary may wait for its servers (PostgreSQL,
//! KurrentDB) up to minutes; a signal then has nothing in flight to let
//! finish, so it ends the process at once, as the default action would
//! ([`unless_stopped`]; h157 F5: command-api kept the signal for a server
//! that was not running yet, and only SIGKILL stopped it).

use std::future::Future;

/// A stop signal's name and the exit status a process killed by it has
/// (128 + its number), which a second one exits with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopSignal {
    /// `SIGTERM` or `SIGINT`.
    pub name: &'static str,
    /// 128 + the signal's number: 143 or 130.
    pub exit_status: i32,
}

/// The process's SIGTERM and SIGINT, listened to from its start to its end:
/// streams made anew after a signal could see that signal again.
pub struct StopSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Installs the handlers (within a tokio runtime); `None` (logged) when
    /// they cannot be installed.
    pub fn install() -> Option<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(terminate), Ok(interrupt)) => Some(Self {
                terminate,
                interrupt,
            }),
            _ => {
                tracing::error!(
                    "cannot install the SIGTERM and SIGINT handlers; stop the process with SIGKILL"
                );
                None
            }
        }
    }

    /// The next SIGTERM or SIGINT.
    async fn next(&mut self) -> StopSignal {
        tokio::select! {
            _ = self.terminate.recv() => StopSignal { name: "SIGTERM", exit_status: 128 + 15 },
            _ = self.interrupt.recv() => StopSignal { name: "SIGINT", exit_status: 128 + 2 },
        }
    }

    /// `start`'s output, or the first SIGTERM or SIGINT that comes before
    /// it ends (`start` is then dropped).
    pub async fn first_of<T>(&mut self, start: impl Future<Output = T>) -> Result<T, StopSignal> {
        tokio::select! {
            output = start => Ok(output),
            signal = self.next() => Err(signal),
        }
    }

    /// Spawns the task that runs `stop` (the server's graceful stop: finish
    /// the requests in flight, within its shutdown timeout) at the first
    /// SIGTERM or SIGINT, even one that arrived before this call, and exits
    /// the process at once at a second one, as an impatient operator asks
    /// (every acknowledged write is already durable; what is cut is what a
    /// kill would cut).
    pub fn stop_with<Fut>(mut self, stop: impl FnOnce() -> Fut + Send + 'static)
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(async move {
            let first = self.next().await;
            tracing::info!(
                signal = first.name,
                "stopping: finishing the requests in flight (a second signal stops at once)"
            );
            tokio::spawn(stop());
            let second = self.next().await;
            tracing::warn!(
                signal = second.name,
                "stopping at once: requests in flight are cut"
            );
            std::process::exit(second.exit_status);
        });
    }
}

/// `start`'s output (a start-up wait for a server), unless a SIGTERM or
/// SIGINT comes first: then the process exits at once with the signal's
/// status (143, 130), as the signal's default action would, nothing being
/// served yet. Without `signals` (they could not be installed) `start`
/// runs alone.
pub async fn unless_stopped<T>(
    signals: Option<&mut StopSignals>,
    start: impl Future<Output = T>,
) -> T {
    let Some(signals) = signals else {
        return start.await;
    };
    match signals.first_of(start).await {
        Ok(output) => output,
        Err(signal) => {
            tracing::info!(
                signal = signal.name,
                "stopping while starting: nothing is served yet"
            );
            std::process::exit(signal.exit_status);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_signal_ends_a_start_up_wait() {
        let mut signals = StopSignals::install().expect("handlers installed");
        let answered = signals.first_of(async { 7 }).await;
        assert_eq!(answered, Ok(7));
        let pid = std::process::id().to_string();
        let sent = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let (stopped, sent) = tokio::join!(
            tokio::time::timeout(
                Duration::from_secs(10),
                signals.first_of(std::future::pending::<()>()),
            ),
            sent,
        );
        assert!(sent.expect("kill runs").success());
        let stopped = stopped.expect("the wait ended at the signal");
        assert_eq!(
            stopped,
            Err(StopSignal {
                name: "SIGTERM",
                exit_status: 143
            })
        );
    }
}
