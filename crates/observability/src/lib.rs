//! Logs and metrics for every binary.

mod exit;
mod failure_streak;
mod listen;
mod log_filter;
mod log_throttle;
mod stop_signals;

pub use exit::{
    exit_code, run_main, with_causes, SettingRefused, EXIT_STATUS_BAD_SETTING,
    RUNTIME_SHUTDOWN_WAIT_MS,
};
pub use failure_streak::{FailureStreak, Failures, FAILURE_REPORT_MS};
pub use listen::{ListenAddress, ListenError, Listening};
pub use log_filter::{log_filter, LogFilter, QUIET_UNLESS_NAMED};
pub use log_throttle::{LogNow, LogThrottle};
pub use stop_signals::{unless_stopped, StopSignal, StopSignals};

use chrono::{DateTime, Utc};
use prometheus::{Encoder, Histogram, Registry, TextEncoder};

/// Buckets of an event-lag histogram, in seconds, from a millisecond to half
/// a minute: the Kafka consumers' `consumer_event_lag_seconds` and the
/// embedded projections' `wallex_relay_event_lag_seconds` alike, so the two
/// modes read the same.
pub const EVENT_LAG_BUCKETS_SECONDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Observes into `lag` the age at `now` of each event that occurred at one
/// of `occurred_at`, in seconds. A clock behind the producer's shows as
/// zero, not as a negative lag.
pub fn observe_event_lag(
    lag: &Histogram,
    now: DateTime<Utc>,
    occurred_at: impl IntoIterator<Item = DateTime<Utc>>,
) {
    for at in occurred_at {
        lag.observe((now - at).to_std().unwrap_or_default().as_secs_f64());
    }
}

/// Bound on each dependency's answer to a `/health` check, in milliseconds,
/// in every binary: a dependency that has not answered by then is reported
/// down. Under the k8s probes' `timeoutSeconds` (2 s for command-api's
/// readiness, 3 s elsewhere), so a database that hangs makes the probe see a
/// 503 rather than time out; a pool's own acquire timeout (5 s) is longer.
pub const HEALTH_CHECK_TIMEOUT_MS: u64 = 1_500;

/// The longest `SHUTDOWN_TIMEOUT_SECONDS` any binary accepts, in seconds:
/// an hour, far beyond any orchestrator's grace period.
pub const SHUTDOWN_TIMEOUT_SECONDS_MAX: u64 = 3_600;

/// `check`'s answer to a health check, its error as text, or "no answer
/// within 1500 ms" when it has none within [`HEALTH_CHECK_TIMEOUT_MS`].
pub async fn health_check<T, E: std::fmt::Display>(
    check: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    let timeout = std::time::Duration::from_millis(HEALTH_CHECK_TIMEOUT_MS);
    match tokio::time::timeout(timeout, check).await {
        Ok(answer) => answer.map_err(|error| error.to_string()),
        Err(_) => Err(format!("no answer within {HEALTH_CHECK_TIMEOUT_MS} ms")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log pipelines.
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

/// Installs the global subscriber, filtered by [`log_filter`] of `RUST_LOG`,
/// writing to standard output; text lines are coloured only on a terminal
/// (not in a file, a pipe or a journal).
///
/// A line that cannot be written (a full disk under a log file, a log
/// collector gone from the other end of a pipe) is dropped. By default the
/// subscriber reports that on standard error with `eprintln!`, which
/// panics when standard error fails too, and a panic in a storage writer's
/// thread stops the process: a full disk would turn into a crash loop
/// instead of writes refused until space is freed.
pub fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    let LogFilter { filter, warnings } = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .log_internal_errors(false);
    // A second install (tests start several apps in one process) keeps the first.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    for warning in warnings {
        if tracing::enabled!(tracing::Level::WARN) {
            tracing::warn!("{warning}");
        } else {
            // The filter itself leaves this out (`RUST_LOG=infoo`): say it
            // where the operator looks anyway, ignoring a closed stream.
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "WARN {warning}");
        }
    }
}

/// The registry's metrics in Prometheus text format.
pub fn render_metrics(registry: &Registry) -> String {
    let mut buffer = Vec::new();
    let encoder = TextEncoder::new();
    if encoder.encode(&registry.gather(), &mut buffer).is_err() {
        return String::new();
    }
    String::from_utf8(buffer).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_check_is_its_answer_or_down_after_the_bound() {
        assert_eq!(health_check(async { Ok::<_, String>(7) }).await, Ok(7));
        assert_eq!(
            health_check(async { Err::<u8, _>("refused") }).await,
            Err("refused".to_owned())
        );
        let started = std::time::Instant::now();
        let hung = health_check(std::future::pending::<Result<u8, String>>()).await;
        assert_eq!(
            hung,
            Err(format!("no answer within {HEALTH_CHECK_TIMEOUT_MS} ms"))
        );
        assert!(started.elapsed() < std::time::Duration::from_millis(HEALTH_CHECK_TIMEOUT_MS * 2));
    }
}
