//! Stopping on a signal: SIGTERM (what orchestrators send) and SIGINT
//! (Ctrl-C, the embedded default runs in a terminal) both stop gracefully.
//! actix-server's own handling makes SIGINT a forced stop, cutting requests
//! in flight, some after their write committed, so each binary disables it
//! and hands its server's stop to [`stop_on_signals`].

use std::future::Future;

/// Resolves with the signal's name when SIGTERM or SIGINT arrives; never,
/// if the handlers cannot be installed (logged).
async fn stop_requested() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!(
            "cannot install the SIGTERM and SIGINT handlers; stop the process with SIGKILL"
        );
        return std::future::pending().await;
    };
    tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    }
}

/// Spawns the task that calls `stop(true)` (finish the requests in flight,
/// within the server's shutdown timeout) at the first SIGTERM or SIGINT, and
/// `stop(false)` (at once) at a second one.
pub fn stop_on_signals<F, Fut>(stop: F)
where
    F: Fn(bool) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let signal = stop_requested().await;
        tracing::info!(
            signal,
            "stopping: finishing the requests in flight (a second signal stops at once)"
        );
        tokio::spawn(stop(true));
        let signal = stop_requested().await;
        tracing::warn!(signal, "stopping at once: requests in flight are cut");
        stop(false).await;
    });
}
