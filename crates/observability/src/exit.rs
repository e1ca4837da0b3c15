//! How a binary ends on an error: one line on stderr naming what failed and
//! why, never the `Debug` dump `fn main() -> Result` prints.

use std::error::Error;
use std::future::Future;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// How long a binary's end waits for the runtime's blocking tasks, in ms.
/// A blocking call that never returns (a Kafka client whose close waits on a
/// group rebalance that never completes) would otherwise keep the process
/// alive after it logged its stop, SIGTERM or not.
pub const RUNTIME_SHUTDOWN_WAIT_MS: u64 = 5_000;

/// Runs a binary's `main` on a multi-threaded tokio runtime, shuts the
/// runtime down waiting at most [`RUNTIME_SHUTDOWN_WAIT_MS`] for its
/// blocking tasks, and ends as [`exit_code`] says. `#[tokio::main]` waits for
/// them without bound.
pub fn run_main(binary: &str, main: impl Future<Output = Result<(), Box<dyn Error>>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return exit_code(binary, Err(Box::new(error))),
    };
    let outcome = runtime.block_on(main);
    runtime.shutdown_timeout(Duration::from_millis(RUNTIME_SHUTDOWN_WAIT_MS));
    exit_code(binary, outcome)
}

/// `ExitCode::SUCCESS` for `Ok`; for `Err` prints `<binary>: <message>:
/// <cause>: …` on stderr (see [`with_causes`]) and answers
/// `ExitCode::FAILURE` (1).
pub fn exit_code(binary: &str, outcome: Result<(), Box<dyn Error>>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Unlike `eprintln!`, a standard error that cannot be written
            // does not panic: the exit code still says the binary failed.
            let _ = writeln!(
                std::io::stderr(),
                "{binary}: {}",
                with_causes(error.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

/// An error's message followed by each cause's (`: `-separated), skipping a
/// cause whose message the text already holds (many errors print their
/// cause in their own message and keep it as their source too).
pub fn with_causes(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let message = inner.to_string();
        if !text.contains(&message) {
            text = format!("{text}: {message}");
        }
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocking_task_that_never_ends_does_not_keep_the_binary_alive() {
        let started = std::time::Instant::now();
        let code = run_main("test", async {
            drop(tokio::task::spawn_blocking(|| {
                std::thread::sleep(Duration::from_secs(3_600))
            }));
            Ok(())
        });
        assert_eq!(code, ExitCode::SUCCESS);
        assert!(
            started.elapsed() < Duration::from_millis(RUNTIME_SHUTDOWN_WAIT_MS * 2),
            "ended after {:?}",
            started.elapsed()
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot connect to PostgreSQL")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("password authentication failed for user \"wallex\"")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot start: {0}")]
    struct Repeating(#[source] Inner);

    #[test]
    fn every_cause_is_named_once_on_one_line() {
        assert_eq!(
            with_causes(&Outer(Inner)),
            "cannot connect to PostgreSQL: password authentication failed for user \"wallex\""
        );
        assert_eq!(
            with_causes(&Repeating(Inner)),
            "cannot start: password authentication failed for user \"wallex\""
        );
    }

    #[test]
    fn only_an_error_fails_the_process() {
        assert_eq!(exit_code("test", Ok(())), ExitCode::SUCCESS);
        assert_eq!(
            exit_code("test", Err(Box::new(Outer(Inner)))),
            ExitCode::FAILURE
        );
    }
}
