//! Stopping on a signal: SIGTERM (what orchestrators send) and SIGINT
//! (Ctrl-C, the embedded default runs in a terminal) both stop gracefully.
//! actix-server's own handling makes SIGINT a forced stop, cutting requests
//! in flight, some after their write committed, so each binary disables it,
//! installs [`StopSignals`] first thing (a signal during the start is kept,
//! not left to the default action, which kills) and hands them its
//! server's stop once the server runs ([`StopSignals::stop_with`]).

use std::future::Future;

/// A stop signal's name and the exit status a process killed by it has
/// (128 + its number), which a second one exits with.
struct StopSignal {
    name: &'static str,
    exit_status: i32,
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
