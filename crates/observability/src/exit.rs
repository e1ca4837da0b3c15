//! How a binary ends on an error: one line on stderr naming what failed and
//! why, never the `Debug` dump `fn main() -> Result` prints, and the one
//! place its exit status is chosen:
//!
//! - [`EXIT_STATUS_BAD_SETTING`] (2, clap's own for a bad argument): a
//!   setting's value refused by its own rules, whatever the machine it runs
//!   on (clap's refusals exit with it before `main`'s work starts; an error
//!   found later says so by holding a [`SettingRefused`] in its chain, such
//!   as an `AUTH_JWT_SECRET` too short, too plain or padded with white space).
//! - 1: anything else, a start refused by the machine's state among them (a
//!   port in use, a `HOST` that does not resolve, a key file that cannot be
//!   read) (h161 N6).

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

/// The exit status of a setting's value refused by its own rules: clap's
/// status for a bad argument, so every bad setting ends alike whether clap
/// or the start found it.
pub const EXIT_STATUS_BAD_SETTING: u8 = 2;

/// A setting's value refused by its own rules (not by the machine's state):
/// [`exit_code`] ends with [`EXIT_STATUS_BAD_SETTING`] when an error or any
/// of its causes is one. It shows the refusal's message, and keeps the
/// refusal as its cause.
#[derive(Debug)]
pub struct SettingRefused(Box<dyn Error + Send + Sync + 'static>);

impl SettingRefused {
    /// Marks `refusal` as a setting's value refused by its own rules.
    pub fn new(refusal: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Self {
        Self(refusal.into())
    }

    /// The refusal, to look at (`downcast_ref`) in tests and callers.
    pub fn refusal(&self) -> &(dyn Error + Send + Sync + 'static) {
        self.0.as_ref()
    }
}

impl std::fmt::Display for SettingRefused {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(formatter)
    }
}

impl Error for SettingRefused {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(self.0.as_ref())
    }
}

/// `ExitCode::SUCCESS` for `Ok`; for `Err` prints `<binary>: <message>:
/// <cause>: …` on stderr (see [`with_causes`]) and answers
/// [`EXIT_STATUS_BAD_SETTING`] when the error or a cause is a
/// [`SettingRefused`], else `ExitCode::FAILURE` (1).
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
            if is_setting_refused(error.as_ref()) {
                ExitCode::from(EXIT_STATUS_BAD_SETTING)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Whether `error` or one of its causes is a [`SettingRefused`].
fn is_setting_refused(error: &(dyn Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(inner) = cause {
        if inner.is::<SettingRefused>() {
            return true;
        }
        cause = inner.source();
    }
    false
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

    #[derive(Debug, thiserror::Error)]
    #[error("cannot start")]
    struct Starting(#[source] SettingRefused);

    #[derive(Debug, thiserror::Error)]
    enum Transparent {
        #[error(transparent)]
        Start(#[from] Starting),
    }

    #[test]
    fn a_setting_refused_by_its_own_rules_exits_2_wherever_it_is_in_the_chain() {
        let refused = || SettingRefused::new(Inner);
        let bad_setting = ExitCode::from(EXIT_STATUS_BAD_SETTING);
        assert_eq!(exit_code("test", Err(Box::new(refused()))), bad_setting);
        assert_eq!(
            exit_code("test", Err(Box::new(Starting(refused())))),
            bad_setting
        );
        let hidden = Transparent::from(Starting(refused()));
        assert_eq!(exit_code("test", Err(Box::new(hidden))), bad_setting);
        assert_eq!(
            with_causes(&Starting(refused())),
            "cannot start: password authentication failed for user \"wallex\""
        );
        assert!(refused().refusal().is::<Inner>());
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
